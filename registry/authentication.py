"""Bearer-token authentication for the REST API."""
from __future__ import annotations

import logging
from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from registry.models import ApiToken

logger = logging.getLogger("registry.security")

KEYWORDS = ("bearer", "token")
# Writing last_used_at on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate ``Authorization: Bearer <token>`` (or ``Token <token>``) against ``ApiToken``.

    The request's ``auth`` is the token, whose scope the permission class checks; its ``user`` is
    the token's user, or an anonymous user for a token that has no user.
    """

    def authenticate(self, request: Request) -> tuple[object, ApiToken] | None:
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].decode(errors="replace").lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header; expected 'Bearer <token>'.", code="invalid_token"
            )

        token = self._find_token(parts[1].decode(errors="replace"))
        self._record_use(token)
        return (token.user or AnonymousUser(), token)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'

    def _find_token(self, secret: str) -> ApiToken:
        token = ApiToken.objects.select_related("user").filter(secret_hash=ApiToken.hash_secret(secret)).first()
        if token is None:
            logger.info("Rejected an unknown API token")
            raise exceptions.AuthenticationFailed("The API token is not valid.", code="invalid_token")
        if token.is_revoked:
            logger.info("Rejected revoked API token %s (id %s)", token.name, token.pk)
            raise exceptions.AuthenticationFailed("The API token has been revoked.", code="revoked_token")
        if token.user is not None and not token.user.is_active:
            raise exceptions.AuthenticationFailed("The API token's user is inactive.", code="inactive_user")
        return token

    def _record_use(self, token: ApiToken) -> None:
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
