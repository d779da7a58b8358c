"""``matih-ingest tenants``: each tenant's topic, principals, ACLs and quota on Kafka.

Run as an operator principal (``MATIH_KAFKA_USERNAME`` with ALTER on the cluster);
the local secure broker's ``deploy/kafka/kafka.sh admin-env`` prints its settings.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ingest.cli.options import BootstrapOption, TopicOption, kafka_settings, run_command
from ingest.errors import IngestError
from ingest.kafka.tenants import TenantAdmin, new_password
from ingest.settings import KafkaSettings
from ingest.validation import check_tenant_id

app = typer.Typer(
    help="Tenants on Kafka: topic, SCRAM principals, write ACLs and quotas.",
    no_args_is_help=True,
)
console = Console()

TenantArgument = Annotated[str, typer.Argument(help="The tenant id, e.g. acme-corp.")]
ByteRateOption = Annotated[
    int | None,
    typer.Option(
        "--byte-rate", min=1, help="Producer quota in bytes/s (the brokers throttle past it)."
    ),
]


def _tenant(value: str) -> str:
    try:
        return check_tenant_id(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _print_credential(kafka: KafkaSettings, principal: str, password: str) -> None:
    """The new credential, shown this once (it is kept nowhere else)."""
    console.print(f"principal {principal}: give its trainers these settings (shown once):")
    # Plain prints: the lines are copied as they are, and rich would wrap or style them.
    print(f"MATIH_KAFKA_SECURITY_PROTOCOL={kafka.security_protocol.value}")
    print(f"MATIH_KAFKA_SASL_MECHANISM={kafka.sasl_mechanism.value}")
    print("MATIH_KAFKA_TENANT_TOPICS=true")
    print(f"MATIH_KAFKA_USERNAME={principal}")
    print(f"MATIH_KAFKA_PASSWORD={password}")


@app.command()
def add(
    tenant: TenantArgument,
    principal: Annotated[
        str | None, typer.Option("--principal", help="Its SCRAM user; the tenant id by default.")
    ] = None,
    byte_rate: ByteRateOption = None,
    bootstrap_servers: BootstrapOption = None,
    topic: TopicOption = None,
) -> None:
    """Create the tenant's topic and a principal that may write it, and only it."""
    kafka = kafka_settings(bootstrap_servers, topic, None)
    tenant, user, password = _tenant(tenant), principal or tenant, new_password()
    created = run_command(
        "tenants add", lambda: TenantAdmin(kafka).add(tenant, user, password, byte_rate)
    )
    console.print(f"tenant {tenant}: topic {created}, writable by {user} only")
    _print_credential(kafka, user, password)


@app.command("list")
def list_(bootstrap_servers: BootstrapOption = None, topic: TopicOption = None) -> None:
    """List the tenants: topic, the principals that may write it, their quotas."""
    kafka = kafka_settings(bootstrap_servers, topic, None)
    admin = TenantAdmin(kafka)

    async def collect() -> list[Any]:
        return await admin.accesses(await admin.tenants())

    table = Table("tenant", "topic", "principals", "quota (bytes/s)", title="tenants")
    for access in run_command("tenants list", collect):
        rates = [
            f"{access.byte_rates[p]:.0f}" if p in access.byte_rates else "-"
            for p in access.principals
        ]
        table.add_row(
            access.tenant_id, access.topic, ", ".join(access.principals), ", ".join(rates)
        )
    console.print(table)


@app.command()
def rotate(
    tenant: TenantArgument,
    principal: Annotated[
        str | None,
        typer.Option("--principal", help="The new SCRAM user; <tenant>.<UTC time> by default."),
    ] = None,
    byte_rate: ByteRateOption = None,
    bootstrap_servers: BootstrapOption = None,
    topic: TopicOption = None,
) -> None:
    """Add a new principal beside the tenant's current ones (same rights and quota).

    Switch the trainers to it, then `tenants retire` the old one: events in flight and
    spooled under the old credential are delivered meanwhile.
    """
    kafka = kafka_settings(bootstrap_servers, topic, None)
    tenant = _tenant(tenant)
    user = principal or f"{tenant}.{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    admin, password = TenantAdmin(kafka), new_password()

    async def work() -> list[str]:
        access = await admin.access(tenant)
        if not access.principals:
            raise IngestError(f"tenant {tenant!r} has no principal to rotate; `tenants add` it")
        rate = byte_rate or (int(max(access.byte_rates.values())) if access.byte_rates else None)
        await admin.add_principal(tenant, user, password, rate)
        return access.principals

    old = run_command("tenants rotate", work)
    console.print(
        f"tenant {tenant}: {user} added beside {', '.join(old)}; once the trainers use it:"
        f" matih-ingest tenants retire {tenant} {' '.join(old)}"
    )
    _print_credential(kafka, user, password)


@app.command()
def retire(
    tenant: TenantArgument,
    principals: Annotated[list[str], typer.Argument(help="The principals to remove.")],
    bootstrap_servers: BootstrapOption = None,
    topic: TopicOption = None,
) -> None:
    """Remove principals of a tenant: their ACLs, credentials and quotas."""
    kafka = kafka_settings(bootstrap_servers, topic, None)
    admin = TenantAdmin(kafka)

    async def work() -> None:
        for principal in principals:
            await admin.retire(_tenant(tenant), principal)

    run_command("tenants retire", work)
    console.print(f"tenant {tenant}: retired {', '.join(principals)}")


@app.command()
def remove(
    tenant: TenantArgument,
    delete_topic: Annotated[
        bool,
        typer.Option(
            "--delete-topic", help="Also delete its topic, and the events not yet written."
        ),
    ] = False,
    bootstrap_servers: BootstrapOption = None,
    topic: TopicOption = None,
) -> None:
    """Remove a tenant's principals: nothing more of it can be written.

    Its runs in MLflow stay. Its topic stays unless --delete-topic: the workers still
    write what it holds, and replay reaches it until retention expires it.
    """
    kafka = kafka_settings(bootstrap_servers, topic, None)
    retired = run_command(
        "tenants remove", lambda: TenantAdmin(kafka).remove(_tenant(tenant), delete_topic)
    )
    kept = (
        "deleted, with any events the workers had not written"
        if delete_topic
        else ("kept: the workers write what it holds; retention expires it")
    )
    console.print(
        f"tenant {tenant}: retired {', '.join(retired) or 'no principal'}; its topic"
        f" {kept}; its runs in MLflow are untouched"
    )


@app.command()
def worker(
    principal: Annotated[str, typer.Argument(help="The workers' SCRAM user.")],
    bootstrap_servers: BootstrapOption = None,
    topic: TopicOption = None,
) -> None:
    """Create the workers' principal: it reads every events topic, writes dead letters."""
    kafka = kafka_settings(bootstrap_servers, topic, None)
    password = new_password()
    run_command("tenants worker", lambda: TenantAdmin(kafka).add_worker(principal, password))
    console.print(f"workers' principal {principal}: reads {kafka.topic} and its tenant topics")
    _print_credential(kafka, principal, password)
