"""Creates Octavia's schema on PostgreSQL for the Magnetar OpenStack all-in-one (a test cloud).

usage: /usr/bin/python3 octavia_schema.py OCTAVIA_CONF

Octavia's alembic migrations only run on MySQL/MariaDB (Zed's fail on PostgreSQL at
"ALTER TABLE listener_statistics DROP CONSTRAINT "PRIMARY""). Octavia's own functional tests build the schema from
the models instead (octavia/tests/functional/db/base.py): create_all, then seed the lookup tables and the DELETED
placeholders that the migrations would insert. This does the same once; openstack-aio.sh then runs
"octavia-db-manage stamp head" (a no-op for later "upgrade head"). Idempotent: does nothing when the alembic_version
table exists.
"""
import sys

import sqlalchemy as sa
from oslo_config import cfg

from octavia.common import config
from octavia.common import constants as c
from octavia.db import base_models
from octavia.db import models  # noqa: F401 (registers every table on BASE.metadata)

config.init(['--config-file', sys.argv[1]])
engine = sa.create_engine(cfg.CONF.database.connection)
if sa.inspect(engine).has_table('alembic_version'):
    sys.exit(0)

base_models.BASE.metadata.create_all(engine)
lookups = {
    'provisioning_status': c.SUPPORTED_PROVISIONING_STATUSES,
    'health_monitor_type': c.SUPPORTED_HEALTH_MONITOR_TYPES,
    'algorithm': c.SUPPORTED_LB_ALGORITHMS,
    'protocol': c.SUPPORTED_PROTOCOLS,
    'operating_status': c.SUPPORTED_OPERATING_STATUSES,
    'session_persistence_type': c.SUPPORTED_SP_TYPES,
    'amphora_roles': c.SUPPORTED_AMPHORA_ROLES,
    'lb_topology': c.SUPPORTED_LB_TOPOLOGIES,
    'vrrp_auth_method': c.SUPPORTED_VRRP_AUTH,
    'l7rule_type': c.SUPPORTED_L7RULE_TYPES,
    'l7rule_compare_type': c.SUPPORTED_L7RULE_COMPARE_TYPES,
    'l7policy_action': c.SUPPORTED_L7POLICY_ACTIONS,
    'client_authentication_mode': c.SUPPORTED_CLIENT_AUTH_MODES,
}
meta = base_models.BASE.metadata
with engine.begin() as conn:
    for table, names in lookups.items():
        conn.execute(meta.tables[table].insert(), [{'name': n} for n in names])
    # Placeholders the API points deleted load balancers' flavors and availability zones at.
    conn.execute(meta.tables['flavor_profile'].insert(), [dict(
        id=c.NIL_UUID, name='DELETED-PLACEHOLDER', provider_name=c.DELETED, flavor_data='{}')])
    conn.execute(meta.tables['flavor'].insert(), [dict(
        id=c.NIL_UUID, flavor_profile_id=c.NIL_UUID, name='DELETED-PLACEHOLDER', enabled=False,
        description='Placeholder for DELETED LBs with DELETED flavors')])
    conn.execute(meta.tables['availability_zone_profile'].insert(), [dict(
        id=c.NIL_UUID, name='DELETED-PLACEHOLDER', provider_name=c.DELETED, availability_zone_data='{}')])
    conn.execute(meta.tables['availability_zone'].insert(), [dict(
        availability_zone_profile_id=c.NIL_UUID, name=c.NIL_UUID, enabled=False,
        description='Placeholder for DELETED LBs with DELETED availability zones')])

