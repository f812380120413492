"""Seeds deploy/keystone.sh's Keystone through its API, as the bootstrap admin (openstacksdk, one process).

usage: /usr/bin/python3 keystone_seed.py STATE_DIR
Environment: KEYSTONE_URL, KEYSTONE_ADMIN_PASSWORD. Passwords are read from STATE_DIR/<user>.password.
Creates projects service and demo, roles member and reader, users magnetar (admin on service, as Magnum's service
user), demo (member on demo) and demo-reader (reader on demo). Every step finds before it creates, so a rerun, or a
retry after a dropped connection, is harmless. One process instead of ~10 "openstack" CLI calls of 2-4 s each.
"""
import os
import sys
import time

import openstack

PROJECTS = ['service', 'demo']
ROLES = ['member', 'reader']
USERS = [('magnetar', 'service', 'admin'), ('demo', 'demo', 'member'), ('demo-reader', 'demo', 'reader')]


def connect():
    return openstack.connect(
        load_yaml_config=False, load_envvars=False, region_name='RegionOne', interface='public',
        auth_type='password', identity_api_version='3',
        auth=dict(auth_url=os.environ['KEYSTONE_URL'], username='admin', password=os.environ['KEYSTONE_ADMIN_PASSWORD'],
                  project_name='admin', user_domain_name='Default', project_domain_name='Default'))


def seed(state):
    idn = connect().identity
    projects = {p: idn.find_project(p, domain_id='default') or idn.create_project(name=p, domain_id='default')
                for p in PROJECTS}
    roles = {r: idn.find_role(r) or idn.create_role(name=r) for r in ROLES + ['admin']}
    for name, project, role in USERS:
        password = open(os.path.join(state, f'{name}.password')).read().strip()
        user = idn.find_user(name, domain_id='default') or idn.create_user(name=name, password=password, domain_id='default')
        # A grant is an idempotent PUT. (No HEAD check first: after a HEAD answered 404, uwsgi's HTTP router leaves
        # the kept-alive connection hanging until its 60 s timeout.)
        idn.assign_project_role_to_user(projects[project], user, roles[role])


def main():
    state = sys.argv[1]
    delays = [0.5, 1, 2, 4, 8, 15]
    for attempt, delay in enumerate(delays + [None], start=1):
        try:
            seed(state)
            return 0
        except Exception as e:  # a dropped keep-alive connection, Keystone still warming up, ...
            if delay is None:
                print(f'keystone_seed: giving up after {attempt} attempts: {type(e).__name__}: {e}', file=sys.stderr)
                return 1
            print(f'keystone_seed: attempt {attempt} failed ({type(e).__name__}: {e}); retrying in {delay} s',
                  file=sys.stderr)
            time.sleep(delay)


if __name__ == '__main__':
    sys.exit(main())
