from django.urls import re_path
from django.views.generic import RedirectView

urlpatterns = [
    re_path(r"^$", RedirectView.as_view(pattern_name="horizon:admin:container_infra.quotas:index"), name="index"),
]
