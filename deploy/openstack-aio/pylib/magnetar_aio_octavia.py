"""Octavia network driver for the Magnetar OpenStack all-in-one (a test cloud, not a production driver).

The octavia-worker runs with no-op amphora and compute drivers (no amphora VM is ever booted), so its network
driver must not plug anything either: Octavia's no-op network driver. But the VIP port itself is real — the API's
amphora provider allocates it in Neutron (so a floating IP can point at it) — and the no-op driver would leave it
behind when the load balancer is deleted, keeping its subnet and network from being deleted. This driver is the
no-op one plus the VIP port's deletion, as the allowed_address_pairs driver does it.
"""
from oslo_config import cfg
from oslo_log import log as logging

from octavia.common import clients
from octavia.network.drivers.noop_driver import driver as noop_driver

LOG = logging.getLogger(__name__)
CONF = cfg.CONF
OCTAVIA_OWNER = 'Octavia'  # device_owner of the ports Octavia creates


class NoopNetworkDriverWithVipCleanup(noop_driver.NoopNetworkDriver):
    def deallocate_vip(self, vip):
        super().deallocate_vip(vip)
        if not vip.port_id:
            return
        neutron = clients.NeutronAuth.get_neutron_client(
            endpoint=CONF.neutron.endpoint, region=CONF.neutron.region_name,
            endpoint_type=CONF.neutron.endpoint_type, service_name=CONF.neutron.service_name,
            insecure=CONF.neutron.insecure, ca_cert=CONF.neutron.ca_certificates_file)
        try:
            port = neutron.show_port(vip.port_id)['port']
        except Exception:  # already gone
            LOG.info('VIP port %s already deleted', vip.port_id)
            return
        if port.get('device_owner') == OCTAVIA_OWNER:
            neutron.delete_port(vip.port_id)
            LOG.info('Deleted VIP port %s', vip.port_id)
