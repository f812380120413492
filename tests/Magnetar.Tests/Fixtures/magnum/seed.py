#!/usr/bin/python3
"""Writes rows into a Magnum 15 database through Magnum's own DB layer (magnum.db.api), as magnum-api and
magnum-conductor store them: cluster templates, quotas, clusters (with their default nodegroups).

usage: seed.py MAGNUM_CONF SPEC_JSON_FILE
spec: {"cluster_templates": [{...values...}], "quotas": [{...}], "clusters": [{...}], "nodegroups": [{...}]}
Prints the stored rows' uuids/ids as JSON.
"""
import json
import sys

import magnum.conf
from magnum.db import api as db_api


def main():
    conf = sys.argv[1]
    magnum.conf.CONF([], project='magnum', default_config_files=[conf])
    with open(sys.argv[2]) as f:
        spec = json.load(f)
    dbapi = db_api.get_instance()
    out = {"cluster_templates": [], "quotas": [], "clusters": [], "nodegroups": []}
    for values in spec.get("cluster_templates", []):
        out["cluster_templates"].append(dbapi.create_cluster_template(dict(values)).uuid)
    for values in spec.get("quotas", []):
        out["quotas"].append(dbapi.create_quota(dict(values)).id)
    for values in spec.get("clusters", []):
        out["clusters"].append(dbapi.create_cluster(dict(values)).uuid)
    for values in spec.get("nodegroups", []):
        out["nodegroups"].append(dbapi.create_nodegroup(dict(values)).uuid)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
