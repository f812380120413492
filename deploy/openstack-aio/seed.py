"""Seeds the Magnetar OpenStack all-in-one through its APIs, as Keystone's bootstrap admin (openstacksdk).

usage: /usr/bin/python3 seed.py catalog STATE_DIR NAME,TYPE,URL[,USER] ...   services, endpoints, service users, roles
       /usr/bin/python3 seed.py resources STATE_DIR                        images, public network, flavors, volume
                                                                           type, demo quotas; prints KEY=VALUE ids
Environment: KEYSTONE_URL, KEYSTONE_ADMIN_PASSWORD. Every step finds before it creates, so a rerun is harmless.
One process instead of one "openstack" CLI call per object: each CLI call spends 2-4 s importing its plugins.
"""
import os
import sys

import openstack

REGION = 'RegionOne'
# name -> os_distro; debian-12 is what tests/nodebed boots the servers' user-data on
IMAGES = {'fedora-coreos-40': 'fedora-coreos', 'ubuntu-24.04': 'ubuntu', 'debian-12': 'debian'}
FLAVORS = [('m1.tiny', 512, 1, 1), ('m1.small', 2048, 20, 1), ('m1.medium', 4096, 40, 2), ('m1.large', 8192, 80, 4)]


def log(msg):
    print(f'openstack-aio: {msg}', file=sys.stderr)


def connect():
    return openstack.connect(
        load_yaml_config=False, load_envvars=False, region_name=REGION, interface='public',
        auth_type='password', identity_api_version='3',
        auth=dict(auth_url=os.environ['KEYSTONE_URL'], username='admin', password=os.environ['KEYSTONE_ADMIN_PASSWORD'],
                  project_name='admin', user_domain_name='Default', project_domain_name='Default'))


def grant(conn, role, user, project):
    idn = conn.identity
    r = idn.find_role(role) or idn.create_role(name=role)
    u = idn.find_user(user, domain_id='default', ignore_missing=False)
    p = idn.find_project(project, domain_id='default', ignore_missing=False)
    # An idempotent PUT. (No HEAD check first: after a HEAD answered 404, uwsgi's HTTP router leaves the kept-alive
    # connection hanging until its 60 s timeout.)
    idn.assign_project_role_to_user(p, u, r)


def catalog(conn, state, entries):
    idn = conn.identity
    for entry in entries:
        name, stype, url, *user = entry.split(',')
        if user:  # the service's own user, admin in project "service" (as in any OpenStack deployment)
            password = open(os.path.join(state, f'{user[0]}.password')).read().strip()
            if idn.find_user(user[0], domain_id='default') is None:
                idn.create_user(name=user[0], password=password, domain_id='default')
            grant(conn, 'admin', user[0], 'service')
        svc = next(iter(idn.services(type=stype)), None) or idn.create_service(name=name, type=stype)
        have = {e.interface for e in idn.endpoints(service_id=svc.id)}
        for iface in ('public', 'internal', 'admin'):
            if iface not in have:
                idn.create_endpoint(service_id=svc.id, interface=iface, url=url, region_id=REGION)
    # Cinder refuses Nova's attachment deletes unless they carry a service token with the "service" role.
    grant(conn, 'service', 'nova', 'service')
    # Octavia's default policy wants the load-balancer_* roles (as on real clouds); demo is a load-balancer member.
    grant(conn, 'load-balancer_member', 'demo', 'demo')


def resources(conn, state):
    out = {}
    for name, distro in IMAGES.items():
        img = conn.image.find_image(name)
        if img is None:
            # 1 MiB of zeros: nothing boots under the fake virt driver; a real upload keeps Glance's checksums honest.
            img = conn.image.create_image(name=name, data=b'\0' * 1048576, disk_format='raw', container_format='bare',
                                          visibility='public', os_distro=distro, wait=True)
        out[name] = img.id
    net = conn.network.find_network('public')
    if net is None:
        net = conn.network.create_network(name='public', is_router_external=True, is_shared=True,
                                          provider_network_type='flat', provider_physical_network='public')
    if conn.network.find_subnet('public-subnet') is None:
        conn.network.create_subnet(name='public-subnet', network_id=net.id, ip_version=4, cidr='172.24.4.0/24',
                                   gateway_ip='172.24.4.1', is_dhcp_enabled=False,
                                   allocation_pools=[{'start': '172.24.4.10', 'end': '172.24.4.250'}])
    for name, ram, disk, vcpus in FLAVORS:
        if conn.compute.find_flavor(name) is None:
            conn.compute.create_flavor(name=name, ram=ram, disk=disk, vcpus=vcpus, is_public=True)
    if conn.block_storage.find_type('fake') is None:
        conn.block_storage.create_type(name='fake', is_public=True, extra_specs={'volume_backend_name': 'fake'})
    # Room for a few clusters (each: 3-6 servers, a network, a router, load balancers, floating IPs, volumes).
    conn.set_compute_quotas('demo', instances=100, cores=400, ram=819200, server_groups=50, server_group_members=100)
    conn.set_network_quotas('demo', network=50, subnet=50, port=1000, router=20, floatingip=100, security_group=100,
                            security_group_rule=1000)
    conn.set_volume_quotas('demo', volumes=100, gigabytes=5000, snapshots=100)
    print(f'PUBLIC_NETWORK_ID={net.id}')
    print(f'FEDORA_COREOS_IMAGE_ID={out["fedora-coreos-40"]}')
    print(f'UBUNTU_IMAGE_ID={out["ubuntu-24.04"]}')


if __name__ == '__main__':
    what, state_dir, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    c = connect()
    if what == 'catalog':
        catalog(c, state_dir, args)
    elif what == 'resources':
        resources(c, state_dir)
    else:
        sys.exit(f'unknown command {what}')
