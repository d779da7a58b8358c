"""``matih://<bootstrap-servers>?tenant=<id>``: the tracking URI of the MLflow plugin.

The URI names only where Kafka is and whose runs these are; everything else comes from
the ``MATIH_*`` settings, as for the SDK.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from ingest.errors import InvalidEventError
from ingest.validation import check_tenant_id
from producers.settings import ProducerSettings

SCHEME = "matih"
_KEYS = frozenset({"tenant"})


def plugin_settings(store_uri: str, base: ProducerSettings | None = None) -> ProducerSettings:
    """The SDK settings for ``store_uri``: ``base`` (the environment's by default) with the
    URI's bootstrap servers and tenant.

    Raises:
        InvalidEventError: the URI is not ``matih://host:port[,host:port]?tenant=<id>``,
            or names no tenant and ``MATIH_PRODUCER_TENANT_ID`` is not set.
    """
    parts = urlsplit(store_uri)
    form = f"use {SCHEME}://<host:port[,host:port]>?tenant=<tenant id>"
    if parts.scheme != SCHEME or not parts.netloc or parts.path not in ("", "/"):
        raise InvalidEventError(f"tracking URI {store_uri!r} is not a {SCHEME}:// URI: {form}")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - _KEYS)
    if unknown:
        raise InvalidEventError(
            f"tracking URI {store_uri!r}: unknown parameter {unknown[0]!r}; {form} (the rest"
            " comes from the MATIH_* settings)"
        )
    settings = base or ProducerSettings()
    tenants = query.get("tenant", [])
    if len(tenants) > 1:
        raise InvalidEventError(f"tracking URI {store_uri!r} names more than one tenant")
    tenant = tenants[0] if tenants else settings.tenant_id
    if tenant is None:
        raise InvalidEventError(
            f"tracking URI {store_uri!r} names no tenant: {form}, or set MATIH_PRODUCER_TENANT_ID"
        )
    try:
        check_tenant_id(tenant)
    except ValueError as exc:
        raise InvalidEventError(f"tracking URI {store_uri!r}: {exc}") from None
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": parts.netloc})
    return settings.model_copy(update={"kafka": kafka, "tenant_id": tenant})
