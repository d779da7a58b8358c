"""Tenant administration on the cluster: each tenant's topic, principals, ACLs and quota.

A tenant is its topic (``ingest.topics.tenant_topic``). A principal writes it when a
LITERAL ACL on that exact name gives it WRITE and DESCRIBE (and DESCRIBE on the workers'
group lets the SDK wait, before a read, until the workers wrote its run) (a PREFIXED ACL on
``...tenant.acme`` would also open ``...tenant.acme-corp``); with Kafka 4, WRITE on a
topic is also what an idempotent producer needs (no cluster-wide IDEMPOTENT_WRITE). Its
SCRAM credential and its producer byte-rate quota live on the principal.

Rotation never stops a trainer: a tenant may have several principals at once, each
with its own credential and the same ACLs and quota. ``rotate`` adds a new one; once
the trainers use it, ``retire`` removes the old one. (SCRAM holds one credential per
mechanism and user, so changing a principal's password in place would refuse every
client that reconnects with the old one, and their spools would wait.)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import UnknownTopicOrPartitionError

from ingest.kafka.admin import admin_client, ensure_topics
from ingest.kafka.errors import bounded
from ingest.kafka.tools import ACL_TOOL, CONFIG_TOOL, KafkaTools
from ingest.settings import KafkaSettings
from ingest.topics import dead_letter_topic, tenant_of_topic, tenant_topic

__all__ = ["TenantAccess", "TenantAdmin", "new_password"]

_ACL_LINE = re.compile(r"principal=User:(?P<principal>[^,]+), host=[^,]+, operation=WRITE,")
_QUOTA_LINE = re.compile(
    r"Quota configs for user-principal '(?P<principal>[^']+)' are"
    r" .*producer_byte_rate=(?P<rate>[0-9.]+)"
)


def new_password() -> str:
    """A fresh random password (192 bits)."""
    return secrets.token_urlsafe(24)


@dataclass
class TenantAccess:
    """Who may write a tenant's topic, and at what rate."""

    tenant_id: str
    topic: str
    principals: list[str] = field(default_factory=list)
    byte_rates: dict[str, float] = field(default_factory=dict)
    """Per principal, its producer byte-rate quota (bytes/s), where it has one."""


class TenantAdmin:
    """Adds, lists, rotates and removes tenants, as an operator principal (one with
    ALTER on the cluster: the local secure broker's ``admin``)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._tools = KafkaTools(settings)

    async def add(
        self, tenant_id: str, principal: str, password: str, byte_rate: int | None
    ) -> str:
        """Creates the tenant's topic (if missing) and ``principal`` with WRITE on it
        only, and its quota; returns the topic.

        Raises:
            KafkaAccessDeniedError: the operator's principal may not do this.
            KafkaUnavailableError: Kafka or its tools did not answer.
        """
        topic = tenant_topic(self._settings, tenant_id)
        await ensure_topics(self._settings, [topic])
        await self.add_principal(tenant_id, principal, password, byte_rate)
        return topic

    async def add_principal(
        self, tenant_id: str, principal: str, password: str, byte_rate: int | None
    ) -> None:
        """Gives ``principal`` a SCRAM credential, WRITE and DESCRIBE on the tenant's topic,
        and the quota (``byte_rate`` bytes/s; None: no quota)."""
        calls: list[Coroutine[Any, Any, object]] = [
            self._credential(principal, password),
            self._acl("--add", principal, tenant_topic(self._settings, tenant_id)),
        ]
        if byte_rate is not None:
            calls.append(self.set_quota(principal, byte_rate))
        await asyncio.gather(*calls)

    async def set_quota(self, principal: str, byte_rate: int) -> None:
        """Sets ``principal``'s producer byte-rate quota: past it, the brokers delay their
        answers to its produce requests (throttle), so the others' are not."""
        await self._tools.run(
            CONFIG_TOOL,
            *("--alter", "--entity-type", "users", "--entity-name", principal),
            *("--add-config", f"producer_byte_rate={byte_rate}"),
        )

    async def retire(self, tenant_id: str, principal: str) -> None:
        """Removes ``principal``'s ACLs on the tenant's topic, its credential and quota.
        Clients connected with it keep their connection until it closes; nothing
        already in the topic is touched."""
        topic = tenant_topic(self._settings, tenant_id)
        await self._acl("--remove", principal, topic, "--force")
        described = await self._describe_user(principal)
        # Kafka's tool alters a user's SCRAM credentials and its quotas in separate calls.
        for configs in (["SCRAM-SHA-512", "SCRAM-SHA-256"], ["producer_byte_rate"]):
            present = [name for name in configs if name in described]
            if present:
                await self._tools.run(
                    CONFIG_TOOL,
                    *("--alter", "--entity-type", "users", "--entity-name", principal),
                    *("--delete-config", ",".join(present)),
                )

    async def remove(self, tenant_id: str, delete_topic: bool) -> list[str]:
        """Retires every principal of the tenant; deletes its topic (its retained,
        perhaps not yet written, events) only with ``delete_topic``. Returns the
        principals retired. Runs in MLflow are never touched."""
        access = await self.access(tenant_id)
        for principal in access.principals:
            await self.retire(tenant_id, principal)
        if delete_topic:
            async with admin_client(self._settings) as admin:
                with contextlib.suppress(UnknownTopicOrPartitionError):
                    await bounded(
                        admin.delete_topics([access.topic]), self._settings, "deleting the topic"
                    )
        return access.principals

    async def access(self, tenant_id: str) -> TenantAccess:
        """Who may write the tenant's topic, and their quotas."""
        (access,) = await self.accesses([tenant_id])
        return access

    async def accesses(self, tenant_ids: Sequence[str]) -> list[TenantAccess]:
        """``access`` of each tenant, in order. Every user's quota comes from one
        call for them all (each call is a JVM, about 2 s), not one per tenant."""
        found = []
        for tenant_id in tenant_ids:
            topic = tenant_topic(self._settings, tenant_id)
            listed = await self._tools.run(
                ACL_TOOL, "--list", "--topic", topic, "--resource-pattern-type", "literal"
            )
            found.append(TenantAccess(tenant_id, topic, sorted(set(_ACL_LINE.findall(listed)))))
        if not found:
            return found
        quotas = await self._tools.run(CONFIG_TOOL, "--describe", "--entity-type", "users")
        for match in _QUOTA_LINE.finditer(quotas):
            for access in found:
                if match["principal"] in access.principals:
                    access.byte_rates[match["principal"]] = float(match["rate"])
        return found

    async def tenants(self) -> list[str]:
        """The tenants that have a topic, by name."""
        async with admin_client(self._settings) as admin:
            topics = await bounded(admin.list_topics(), self._settings, "listing topics")
        found = (tenant_of_topic(self._settings, topic) for topic in topics)
        return sorted(tenant for tenant in found if tenant)

    async def add_worker(self, principal: str, password: str) -> None:
        """A workers' principal: READ and DESCRIBE on every events topic (PREFIXED on the
        events topic's name: the shared one and each tenant's), WRITE on the dead-letter
        topic, READ and DESCRIBE on the workers' consumer group."""
        settings = self._settings
        topics = [settings.topic, dead_letter_topic(settings)]
        await ensure_topics(settings, topics)
        prefix = ("--topic", settings.topic, "--resource-pattern-type", "prefixed")
        user = f"User:{principal}"
        await asyncio.gather(
            self._credential(principal, password),
            self._tools.run(
                ACL_TOOL,
                *("--add", "--allow-principal", user, "--operation", "Read"),
                *("--operation", "Describe", *prefix),
            ),
            self._tools.run(
                ACL_TOOL,
                *("--add", "--allow-principal", user, "--operation", "Read"),
                *("--group", settings.consumer_group, "--resource-pattern-type", "literal"),
            ),
            self._tools.run(
                ACL_TOOL,
                *("--add", "--allow-principal", user, "--operation", "Write"),
                *("--topic", dead_letter_topic(settings), "--resource-pattern-type", "literal"),
            ),
        )

    async def _credential(self, principal: str, password: str) -> str:
        mechanism = self._settings.sasl_mechanism.value
        return await self._tools.run(
            CONFIG_TOOL,
            *("--alter", "--entity-type", "users", "--entity-name", principal),
            *("--add-config", f"{mechanism}=[password={password}]"),
        )

    async def _acl(self, action: str, principal: str, topic: str, *extra: str) -> None:
        """WRITE and DESCRIBE on the tenant's topic; DESCRIBE on the workers' group, so
        that the SDK can wait until the workers wrote a run before reading it."""
        user = ("--allow-principal", f"User:{principal}")
        await asyncio.gather(
            self._tools.run(
                ACL_TOOL,
                *(action, *user, "--operation", "Write", "--operation", "Describe"),
                *("--topic", topic, "--resource-pattern-type", "literal", *extra),
            ),
            self._tools.run(
                ACL_TOOL,
                *(action, *user, "--operation", "Describe"),
                *("--group", self._settings.consumer_group, "--resource-pattern-type", "literal"),
                *extra,
            ),
        )

    async def _describe_user(self, principal: str) -> str:
        return await self._tools.run(
            CONFIG_TOOL, "--describe", "--entity-type", "users", "--entity-name", principal
        )
