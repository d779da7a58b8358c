"""Who is calling: API keys mapped to tenants, and the tenant a call acts for.

Every call names its tenant in ``X-Tenant-ID`` (as the spec does) and, unless the
gateway runs in open mode, proves it with ``Authorization: Bearer <key>``. Keys
are compared by their SHA-256 digest, so the table in memory holds no key and a
lookup takes the same time whatever the key.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from ingest.api.errors import ApiError
from ingest.validation import check_tenant_id

TENANT_HEADER = "X-Tenant-ID"

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key; each key acts for exactly one tenant.",
)


class KeyRing:
    """The API keys and the tenant each acts for.

    Args:
        keys: API key -> tenant id.
        open_mode: accept every call without a key (local development).
    """

    def __init__(self, keys: dict[SecretStr, str], open_mode: bool) -> None:
        self.open_mode = open_mode
        self._tenants = {_digest(key.get_secret_value()): tenant for key, tenant in keys.items()}

    def tenant_of(self, key: str) -> str | None:
        """The tenant ``key`` acts for, or None for an unknown key."""
        return self._tenants.get(_digest(key))

    def authorize(
        self, credentials: HTTPAuthorizationCredentials | None, tenant: str | None
    ) -> str:
        """The tenant a call acts for.

        Raises:
            ApiError: 401 without a known key; 422 without a valid ``X-Tenant-ID``;
                403 when the key belongs to another tenant.
        """
        key_tenant = None
        if not self.open_mode:
            if credentials is None:
                raise ApiError(
                    401,
                    "unauthenticated",
                    "send an API key as 'Authorization: Bearer <key>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            key_tenant = self.tenant_of(credentials.credentials)
            if key_tenant is None:
                raise ApiError(
                    401,
                    "unauthenticated",
                    "unknown API key",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        if tenant is None:
            raise ApiError.invalid(
                f"header.{TENANT_HEADER}", f"the {TENANT_HEADER} header is required"
            )
        try:
            check_tenant_id(tenant)
        except ValueError as exc:
            raise ApiError.invalid(f"header.{TENANT_HEADER}", str(exc)) from None
        if key_tenant is not None and key_tenant != tenant:
            raise ApiError(403, "forbidden", f"this API key does not act for tenant {tenant!r}")
        return tenant


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_tenant_id: Annotated[
        str | None,
        Header(
            alias=TENANT_HEADER,
            description="The tenant the call acts for; must be the API key's tenant.",
            examples=["acme-corp"],
        ),
    ] = None,
) -> str:
    keys: KeyRing = request.app.state.keys
    return keys.authorize(credentials, x_tenant_id)


Tenant = Annotated[str, Depends(_tenant)]
"""The authenticated tenant of a call: a route parameter of this type requires it."""
