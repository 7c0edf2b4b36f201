"""API permissions: token scopes for machines, Django model permissions for staff."""
from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from registry.models import ApiToken

ACTION_BY_METHOD = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


class HasApiScope(permissions.BasePermission):
    """Allow a token by its scope, and a signed-in user by Django model permissions.

    Safe methods need a ``read`` or ``write`` token, other methods a ``write`` token. A session
    user must be active staff with ``registry.<action>_<model>`` for the view's ``permission_model``,
    where the action is ``view``, ``add``, ``change`` or ``delete`` by method. A view may map methods
    to other actions with ``permission_actions``.
    """

    message = "Your credentials do not allow this request."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ApiToken):
            self.message = "This API token has read scope; writing needs a token with write scope."
            return request.method in permissions.SAFE_METHODS or request.auth.allows_write()

        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            self.message = "Only staff with registry permissions may use the API with a session."
            return False
        self.message = "You do not have the registry permission this request needs."
        return user.has_perms(self._required_permissions(request, view))

    def _required_permissions(self, request: Request, view: Any) -> list[str]:
        model = getattr(view, "permission_model", None)
        if model is None:
            return []
        actions = getattr(view, "permission_actions", {})
        action = actions.get(request.method, ACTION_BY_METHOD.get(request.method, "change"))
        return [f"{model._meta.app_label}.{action}_{model._meta.model_name}"]
