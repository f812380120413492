"""Nova scheduler filter for the Magnetar OpenStack all-in-one (a test cloud, not for production).

The all-in-one has a single compute host, so strict anti-affinity can place only one member of a server group: a
cluster's second master or worker would fail with NoValidHost. Nova refuses anti-affinity groups outright unless a
filter named ServerGroupAntiAffinityFilter is enabled (nova.scheduler.utils._get_group_details), so this one takes
that name and accepts every host: anti-affinity groups are accepted, their members land on the one host. (Nova's
late check on the compute host is off too: [workarounds] disable_group_policy_check_upcall.)
"""
from nova.scheduler import filters


class ServerGroupAntiAffinityFilter(filters.BaseHostFilter):
    RUN_ON_REBUILD = False

    def host_passes(self, host_state, spec_obj):
        return True
