"""Hidden landing panels for the Project and Admin dashboards.

Horizon mounts a dashboard's default panel at the dashboard's own URL (/project/, /admin/). When that panel is an
Angular one (magnum-ui's Clusters, Quotas), Angular's router does not know the URL and reloads the page forever; and
the overviews that are the defaults upstream need Nova usage and limits, which Magnetar does not serve. These
panels are not in the navigation and only redirect to the Container Infra panels.
"""
from django.utils.translation import gettext_lazy as _

import horizon


class ProjectHome(horizon.Panel):
    name = _("Container Infra")
    slug = "magnetar_home"
    nav = False
    urls = "magnetar_horizon.project_urls"


class AdminHome(horizon.Panel):
    name = _("Container Infra")
    slug = "magnetar_home"
    nav = False
    urls = "magnetar_horizon.admin_urls"
    permissions = ("openstack.roles.admin",)
