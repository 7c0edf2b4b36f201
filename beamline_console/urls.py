"""The console's URLs: the admin, the authors' pages, the REST API under /api/v1/, the schema and metrics."""
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from beamline_console.views import ApiIndexView, api_not_found, home

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("api/v1/", ApiIndexView.as_view(), name="api-index"),
    path("authors/", include("authors.urls")),
    path("api/v1/", include("executor.urls")),
    path("api/v1/", include("rollout.urls")),
    path("api/v1/", include("registry.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/schema/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("django_prometheus.urls")),
    re_path(r"^api/v1/(?P<path>.*)$", api_not_found),
]
