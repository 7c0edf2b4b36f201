"""REST API routes of the registry, mounted under /api/v1/. A trailing slash is optional."""
from django.urls import re_path

from registry import views

# Ids match loosely so that a malformed one reaches the view and gets the API's 404 body.
EXTENSION = r"(?P<extension_id>[^/]+)"
VERSION = r"(?P<version>[^/]+)"
TENANT = r"(?P<tenant_id>[^/]+)"
POLICY = r"(?P<policy_id>[^/]+)"

COLLECTION = {"get": "list", "post": "create"}
ITEM = {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}

urlpatterns = [
    re_path(r"^extensions/?$", views.ExtensionViewSet.as_view(COLLECTION), name="extension-list"),
    re_path(rf"^extensions/{EXTENSION}/?$", views.ExtensionViewSet.as_view(ITEM), name="extension-detail"),
    re_path(
        rf"^extensions/{EXTENSION}/versions/?$",
        views.ExtensionVersionViewSet.as_view(COLLECTION),
        name="extension-version-list",
    ),
    re_path(
        rf"^extensions/{EXTENSION}/versions/{VERSION}/activate/?$",
        views.ExtensionVersionViewSet.as_view({"post": "activate"}),
        name="extension-version-activate",
    ),
    re_path(r"^tenants/?$", views.TenantViewSet.as_view(COLLECTION), name="tenant-list"),
    re_path(rf"^tenants/{TENANT}/?$", views.TenantViewSet.as_view(ITEM), name="tenant-detail"),
    re_path(r"^policies/?$", views.PolicyViewSet.as_view(COLLECTION), name="policy-list"),
    re_path(rf"^policies/{POLICY}/?$", views.PolicyViewSet.as_view(ITEM), name="policy-detail"),
]

