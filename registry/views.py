"""REST API views of the registry. They parse, call ``registry.services`` and shape the reply."""
from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from registry import services
from registry.documents import (
    extension_entry,
    registry_entries,
    policies_with_steps,
    policy_document,
    tenant_document,
    version_document,
)
from registry.models import EXTENSION_TYPES, Extension, ExtensionVersion, RoutingPolicy, Tenant
from registry.serializers import (
    ErrorSerializer,
    ExtensionEntrySerializer,
    PolicyDocumentSerializer,
    TenantSerializer,
    VersionCreateSerializer,
    VersionSerializer,
)
from registry.validation import FieldError, InvalidDocument

ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid request; details name every problem."),
    401: OpenApiResponse(ErrorSerializer, description="No or invalid credentials."),
    403: OpenApiResponse(ErrorSerializer, description="The credentials do not allow this request."),
    404: OpenApiResponse(ErrorSerializer, description="Not found."),
    409: OpenApiResponse(ErrorSerializer, description="Conflicts with other registry data."),
}
BOOLEAN_QUERY_VALUES = {"true": True, "false": False}


def _acting_user(request: Request) -> Any:
    return request.user if request.user and request.user.is_authenticated else None


def _invalid_query(name: str, value: str, expected: str) -> InvalidDocument:
    error = FieldError("invalid_choice", f"Query parameter {name}={value!r} is invalid; expected {expected}.", name, name)
    return InvalidDocument("invalid_request", "The query is invalid.", [error])


EXTENSION_ID_PARAMETER = OpenApiParameter("extension_id", str, OpenApiParameter.PATH, description="The extension's id.")


@extend_schema_view(
    list=extend_schema(
        summary="List registry entries",
        parameters=[
            OpenApiParameter("type", str, enum=list(EXTENSION_TYPES)),
            OpenApiParameter("enabled", bool),
        ],
        responses={200: ExtensionEntrySerializer(many=True), **ERROR_RESPONSES},
    ),
    create=extend_schema(
        summary="Register an extension",
        request=ExtensionEntrySerializer,
        responses={201: ExtensionEntrySerializer, **ERROR_RESPONSES},
    ),
    retrieve=extend_schema(summary="Read a registry entry", responses={200: ExtensionEntrySerializer, **ERROR_RESPONSES}),
    update=extend_schema(
        summary="Replace a registry entry",
        request=ExtensionEntrySerializer,
        responses={200: ExtensionEntrySerializer, **ERROR_RESPONSES},
    ),
    partial_update=extend_schema(
        summary="Change part of a registry entry",
        description="Keys given replace the entry's; metadata merges key by key; null removes a key.",
        request=ExtensionEntrySerializer,
        responses={200: ExtensionEntrySerializer, **ERROR_RESPONSES},
    ),
    destroy=extend_schema(summary="Delete an extension", responses={204: None, **ERROR_RESPONSES}),
)
class ExtensionViewSet(viewsets.ViewSet):
    """Registry entries, one per extension, made from each extension's active version."""

    permission_model = Extension

    def list(self, request: Request) -> Response:
        extensions = registry_entries()
        extension_type = request.query_params.get("type")
        if extension_type is not None:
            if extension_type not in EXTENSION_TYPES:
                raise _invalid_query("type", extension_type, "one of " + ", ".join(EXTENSION_TYPES))
            extensions = extensions.filter(type=extension_type)
        enabled = request.query_params.get("enabled")
        if enabled is not None:
            if enabled not in BOOLEAN_QUERY_VALUES:
                raise _invalid_query("enabled", enabled, "true or false")
            extensions = extensions.filter(enabled=BOOLEAN_QUERY_VALUES[enabled])
        return Response([extension_entry(extension) for extension in extensions])

    def create(self, request: Request) -> Response:
        extension = services.create_extension(request.data, user=_acting_user(request))
        return Response(extension_entry(extension), status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, extension_id: str) -> Response:
        return Response(extension_entry(self._get_extension(extension_id)))

    def update(self, request: Request, extension_id: str) -> Response:
        extension = services.update_extension(
            self._get_extension(extension_id), request.data, user=_acting_user(request)
        )
        return Response(extension_entry(extension))

    def partial_update(self, request: Request, extension_id: str) -> Response:
        extension = services.patch_extension(
            self._get_extension(extension_id), request.data, user=_acting_user(request)
        )
        return Response(extension_entry(extension))

    def destroy(self, request: Request, extension_id: str) -> Response:
        services.delete_extension(self._get_extension(extension_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _get_extension(self, extension_id: str) -> Extension:
        return get_object_or_404(Extension, extension_id=extension_id)


@extend_schema_view(
    list=extend_schema(
        summary="List an extension's versions",
        parameters=[EXTENSION_ID_PARAMETER],
        responses={200: VersionSerializer(many=True), **ERROR_RESPONSES},
    ),
    create=extend_schema(
        summary="Add a version",
        description="The new version is inactive unless activate is true.",
        parameters=[EXTENSION_ID_PARAMETER],
        request=VersionCreateSerializer,
        responses={201: VersionSerializer, **ERROR_RESPONSES},
    ),
)
class ExtensionVersionViewSet(viewsets.ViewSet):
    """The versions of one extension; the active one makes its registry entry."""

    permission_model = ExtensionVersion

    @property
    def permission_actions(self) -> dict[str, str]:
        return {"POST": "change" if self.action == "activate" else "add"}

    def list(self, request: Request, extension_id: str) -> Response:
        extension = get_object_or_404(Extension, extension_id=extension_id)
        return Response([version_document(version) for version in extension.versions.order_by("created_at", "id")])

    def create(self, request: Request, extension_id: str) -> Response:
        extension = get_object_or_404(Extension, extension_id=extension_id)
        data = dict(request.data) if isinstance(request.data, dict) else request.data
        activate = data.pop("activate", False) if isinstance(data, dict) else False
        if not isinstance(activate, bool):
            error = FieldError("invalid_type", f"activate must be true or false, not {activate!r}.", "activate", "activate")
            raise InvalidDocument("invalid_version", "The version is invalid.", [error])

        version = services.create_version(extension, data, activate=activate, user=_acting_user(request))
        return Response(version_document(version), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Activate a version",
        parameters=[EXTENSION_ID_PARAMETER, OpenApiParameter("version", str, OpenApiParameter.PATH)],
        request=None,
        responses={200: ExtensionEntrySerializer, **ERROR_RESPONSES},
    )
    def activate(self, request: Request, extension_id: str, version: str) -> Response:
        chosen = get_object_or_404(ExtensionVersion, extension__extension_id=extension_id, version=version)
        services.activate_version(chosen)
        return Response(extension_entry(chosen.extension))


TENANT_ID_PARAMETER = OpenApiParameter("tenant_id", str, OpenApiParameter.PATH)


@extend_schema_view(
    list=extend_schema(summary="List tenants", responses={200: TenantSerializer(many=True), **ERROR_RESPONSES}),
    create=extend_schema(
        summary="Create a tenant", request=TenantSerializer, responses={201: TenantSerializer, **ERROR_RESPONSES}
    ),
    retrieve=extend_schema(
        summary="Read a tenant", parameters=[TENANT_ID_PARAMETER], responses={200: TenantSerializer, **ERROR_RESPONSES}
    ),
    update=extend_schema(
        summary="Replace a tenant's name and description",
        parameters=[TENANT_ID_PARAMETER],
        request=TenantSerializer,
        responses={200: TenantSerializer, **ERROR_RESPONSES},
    ),
    partial_update=extend_schema(
        summary="Change a tenant's name or description",
        parameters=[TENANT_ID_PARAMETER],
        request=TenantSerializer,
        responses={200: TenantSerializer, **ERROR_RESPONSES},
    ),
    destroy=extend_schema(
        summary="Delete a tenant without policies",
        parameters=[TENANT_ID_PARAMETER],
        responses={204: None, **ERROR_RESPONSES},
    ),
)
class TenantViewSet(viewsets.ViewSet):
    """Tenants, the owners of routing policies."""

    permission_model = Tenant

    def list(self, request: Request) -> Response:
        return Response([tenant_document(tenant) for tenant in Tenant.objects.all()])

    def create(self, request: Request) -> Response:
        tenant = services.create_tenant(request.data)
        return Response(tenant_document(tenant), status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, tenant_id: str) -> Response:
        return Response(tenant_document(get_object_or_404(Tenant, tenant_id=tenant_id)))

    def update(self, request: Request, tenant_id: str) -> Response:
        tenant = services.update_tenant(get_object_or_404(Tenant, tenant_id=tenant_id), request.data)
        return Response(tenant_document(tenant))

    def partial_update(self, request: Request, tenant_id: str) -> Response:
        tenant = get_object_or_404(Tenant, tenant_id=tenant_id)
        changes = request.data if isinstance(request.data, dict) else {}
        tenant = services.update_tenant(tenant, {**tenant_document(tenant), **changes})
        return Response(tenant_document(tenant))

    def destroy(self, request: Request, tenant_id: str) -> Response:
        services.delete_tenant(get_object_or_404(Tenant, tenant_id=tenant_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


POLICY_ID_PARAMETER = OpenApiParameter("policy_id", str, OpenApiParameter.PATH)


@extend_schema_view(
    list=extend_schema(
        summary="List routing policies",
        parameters=[OpenApiParameter("tenant_id", str, description="Only this tenant's policies.")],
        responses={200: PolicyDocumentSerializer(many=True), **ERROR_RESPONSES},
    ),
    create=extend_schema(
        summary="Create a routing policy",
        request=PolicyDocumentSerializer,
        responses={201: PolicyDocumentSerializer, **ERROR_RESPONSES},
    ),
    retrieve=extend_schema(
        summary="Read a routing policy",
        parameters=[POLICY_ID_PARAMETER],
        responses={200: PolicyDocumentSerializer, **ERROR_RESPONSES},
    ),
    update=extend_schema(
        summary="Replace a routing policy",
        parameters=[POLICY_ID_PARAMETER],
        request=PolicyDocumentSerializer,
        responses={200: PolicyDocumentSerializer, **ERROR_RESPONSES},
    ),
    partial_update=extend_schema(
        summary="Change top-level keys of a routing policy",
        description="A stage given replaces that stage whole; null removes a key. The result is validated whole.",
        parameters=[POLICY_ID_PARAMETER],
        request=PolicyDocumentSerializer,
        responses={200: PolicyDocumentSerializer, **ERROR_RESPONSES},
    ),
    destroy=extend_schema(
        summary="Delete a routing policy", parameters=[POLICY_ID_PARAMETER], responses={204: None, **ERROR_RESPONSES}
    ),
)
class PolicyViewSet(viewsets.ViewSet):
    """Routing policy documents, validated whole on every write."""

    permission_model = RoutingPolicy

    def list(self, request: Request) -> Response:
        policies = policies_with_steps()
        tenant_id = request.query_params.get("tenant_id")
        if tenant_id is not None:
            policies = policies.filter(tenant__tenant_id=tenant_id)
        return Response([policy_document(policy) for policy in policies])

    def create(self, request: Request) -> Response:
        policy = services.create_policy(request.data)
        return Response(policy_document(policy), status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, policy_id: str) -> Response:
        return Response(policy_document(self._get_policy(policy_id)))

    def update(self, request: Request, policy_id: str) -> Response:
        policy = services.replace_policy(self._get_policy(policy_id), request.data)
        return Response(policy_document(policy))

    def partial_update(self, request: Request, policy_id: str) -> Response:
        policy = services.patch_policy(self._get_policy(policy_id), request.data)
        return Response(policy_document(policy))

    def destroy(self, request: Request, policy_id: str) -> Response:
        services.delete_policy(self._get_policy(policy_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _get_policy(self, policy_id: str) -> RoutingPolicy:
        return get_object_or_404(policies_with_steps(), policy_id=policy_id)

