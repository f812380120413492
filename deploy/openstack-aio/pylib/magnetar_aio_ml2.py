"""An ML2 mechanism driver for the Magnetar OpenStack all-in-one (a test cloud, not a production driver).

No L2 agent runs in the all-in-one (VMs never boot under Nova's fake virt driver), so no real mechanism driver would
bind a port and Nova would fail every server with PortBindingFailed. This driver binds every port on the first
segment offered, with VIF type "other", and reports it ACTIVE: the Neutron API then behaves as it does on a cloud
whose agents are up, which is what Magnetar's driver talks to.
"""
from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class AllInOneBindDriver(api.MechanismDriver):
    def initialize(self):
        pass

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OTHER, {},
                                status=constants.PORT_STATUS_ACTIVE)
            return
