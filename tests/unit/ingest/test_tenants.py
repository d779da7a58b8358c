"""``TenantAdmin`` reading who may write each tenant's topic, without a broker: Kafka's
tools stand in with the lines they print."""

from __future__ import annotations

import pytest

from ingest.kafka.tenants import TenantAdmin
from ingest.kafka.tools import ACL_TOOL, CONFIG_TOOL, KafkaTools
from ingest.settings import KafkaSettings

QUOTAS = "\n".join(
    f"Quota configs for user-principal '{user}' are producer_byte_rate={rate}"
    for user, rate in (("acme-corp", "1048576.0"), ("globex.2", "32768.0"))
)


async def test_listing_tenants_reads_every_quota_in_one_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each call is a JVM of about 2 s: ``tenants list`` read the quotas of all users
    once per tenant, two calls per tenant where one more than the ACL lists does."""
    calls: list[str] = []

    async def run(self: KafkaTools, main: str, *args: str) -> str:
        calls.append(main)
        if main == CONFIG_TOOL:
            return QUOTAS
        topic = args[args.index("--topic") + 1]
        tenant = topic.rsplit(".", 1)[-1]
        principals = {"acme-corp": ["acme-corp"], "globex": ["globex", "globex.2"]}
        return "\n".join(
            f"(principal=User:{p}, host=*, operation=WRITE, permissionType=ALLOW)"
            for p in principals.get(tenant, [])
        )

    monkeypatch.setattr(KafkaTools, "run", run)
    admin = TenantAdmin(KafkaSettings(topic="t"))
    accesses = await admin.accesses(["acme-corp", "globex", "initech"])

    assert [(a.tenant_id, a.topic, a.principals, a.byte_rates) for a in accesses] == [
        ("acme-corp", "t.tenant.acme-corp", ["acme-corp"], {"acme-corp": 1048576.0}),
        ("globex", "t.tenant.globex", ["globex", "globex.2"], {"globex.2": 32768.0}),
        ("initech", "t.tenant.initech", [], {}),
    ]
    assert calls == [ACL_TOOL, ACL_TOOL, ACL_TOOL, CONFIG_TOOL]
    assert (await admin.access("globex")).byte_rates == {"globex.2": 32768.0}
    assert await admin.accesses([]) == []
