"""``ExperimentTracker``: the SDK's entry point, as the spec writes it.

    tracker = ExperimentTracker()
    config = RunConfig(run_name="xgboost-baseline", tenant_id="acme-corp")
    with tracker.start_run(experiment_name="fraud-detection-v3", run_config=config) as run:
        run.log_metrics({"train_loss": 0.3}, step=epoch)

One tracker holds one background sender for all its runs. Runs never wait on
Kafka or MLflow while they log; ending a run waits, bounded, for Kafka's acks.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest.codec import describe
from ingest.errors import InvalidEventError, KafkaUnavailableError
from ingest.events import EventEnvelope, RunCreated
from ingest.ids import is_run_id, new_run_id, run_start_ms
from ingest.layout import experiment_artifact_location, run_artifact_uri
from ingest.validation import (
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS_PER_BATCH,
    check_tag_key,
    check_tenant_id,
    check_text,
)
from producers.artifacts import ArtifactUploader
from producers.delivery.buffer import Calls, EventBuffer, RunIdentity
from producers.delivery.report import DeliveryReport
from producers.run import ActiveRun
from producers.settings import ProducerSettings
from producers.telemetry import ProducerTelemetry

if TYPE_CHECKING:
    from ingest.tracking.reader import MetricHistoryPoint, RunReader
    from producers.delivery.process import SenderProcess
    from producers.delivery.sender import BackgroundSender

logger = logging.getLogger(__name__)


class RunConfig(BaseModel):
    """Who a run belongs to and how it is named."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_name: str | None = Field(default=None, max_length=250, examples=["xgboost-baseline"])
    tenant_id: str | None = Field(
        default=None,
        description="The owning tenant; MATIH_PRODUCER_TENANT_ID when not given.",
        examples=["acme-corp"],
    )
    user_id: str | None = Field(default=None, max_length=250, examples=["alice@acme.com"])
    description: str | None = Field(default=None, max_length=5000)
    tags: dict[str, str] = Field(default_factory=dict, max_length=MAX_TAGS_PER_BATCH)

    @field_validator("tenant_id")
    @classmethod
    def _tenant(cls, value: str | None) -> str | None:
        return None if value is None else check_tenant_id(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = {key: str(item) for key, item in value.items()}
            for key, item in value.items():
                check_tag_key(key)
                check_text(item, MAX_TAG_VALUE_LENGTH, f"tag {key!r} value")
        return value


class ExperimentTracker:
    """Starts runs and reads their metric history.

    Args:
        settings: Kafka, MLflow and batching; from the environment by default.
        metrics: Prometheus metrics of sent and failed events and of the spool's size;
            serve them with ``ingest.telemetry.serve_metrics(host, port, metrics.registry)``.
    """

    def __init__(
        self, settings: ProducerSettings | None = None, metrics: ProducerTelemetry | None = None
    ) -> None:
        self._settings = settings or ProducerSettings()
        self._metrics = metrics
        self._buffer = EventBuffer(self._settings.memory_bytes)
        """The thread sender's buffer (kept across a ``close``: a later run sends it)."""
        self._calls: Calls = self._buffer
        self._sender: BackgroundSender | SenderProcess | None = None
        self._lock = threading.Lock()
        self._run_tenants: dict[str, str] = {}
        self._granted: set[str] = set()
        self._reader: RunReader | None = None
        self._artifacts = ArtifactUploader(self._add_event)

    @property
    def settings(self) -> ProducerSettings:
        """The settings in force."""
        return self._settings

    def start_run(
        self,
        experiment_name: str,
        run_config: RunConfig | None = None,
        run_id: str | None = None,
    ) -> ActiveRun:
        """Starts a run and returns its handle (a context manager).

        Args:
            experiment_name: the experiment, within the tenant; created on first use.
            run_config: name, tenant, user, description and tags of the run.
            run_id: the run's id, e.g. one chosen up front and shared with the other
                ranks (which call ``join_run``); a new id by default.

        Raises:
            InvalidEventError: a field breaks a rule, or no tenant is known.
            KafkaAccessDeniedError: with SASL, the brokers refuse the credential or
                give its principal no right to the tenant's topic (never spooled: it
                could never be delivered).
        """
        config = run_config or RunConfig()
        tenant_id = config.tenant_id or self._settings.tenant_id
        if tenant_id is None:
            raise InvalidEventError(
                "run_config.tenant_id is required (or set MATIH_PRODUCER_TENANT_ID)"
            )
        run_id = run_id or new_run_id()
        start_time = run_start_ms(run_id)
        try:
            created = RunCreated(
                tenant_id=tenant_id,
                run_id=run_id,
                experiment_name=experiment_name,
                run_name=config.run_name,
                description=config.description,
                tags=config.tags,
                user_id=config.user_id,
                start_time=start_time,
            )
        except ValidationError as exc:
            raise InvalidEventError(describe(exc)) from None
        calls = self._ensure_sender()
        self._check_access(tenant_id)
        calls.add_event(created)
        self._run_tenants[run_id] = tenant_id
        identity = RunIdentity(tenant_id, run_id, experiment_name)
        return ActiveRun(
            self, identity, calls, start_time, artifact_uri=self._artifact_uri(identity)
        )

    def join_run(
        self, experiment_name: str, run_id: str, run_config: RunConfig | None = None
    ) -> ActiveRun:
        """Joins a run that another process (rank 0) starts and ends: several ranks, one run.

        A joined run publishes no ``RunCreated`` and no ``RunEnded``: the run's name,
        tags and status belong to the process that called ``start_run``. Ending a joined
        handle (or leaving its ``with`` block) only flushes this process's events. Its
        metrics, params and tags land in the same MLflow run, whichever arrives first
        (any event creates the run it names); keys and steps should not collide across
        ranks, since the same key and step with two values makes two history rows.

        Args:
            experiment_name: the run's experiment, as rank 0 names it.
            run_id: the shared run id (rank 0's ``run.run_id``, or one given to all).
            run_config: only ``tenant_id`` is used.

        Raises:
            InvalidEventError: no tenant is known, or ``run_id`` is not a run id.
            KafkaAccessDeniedError: as for ``start_run``.
        """
        config = run_config or RunConfig()
        tenant_id = config.tenant_id or self._settings.tenant_id
        if tenant_id is None:
            raise InvalidEventError(
                "run_config.tenant_id is required (or set MATIH_PRODUCER_TENANT_ID)"
            )
        if not is_run_id(run_id):
            raise InvalidEventError(f"run id {run_id!r} must be 32 lowercase hex digits")
        start_time = run_start_ms(run_id)
        calls = self._ensure_sender()
        self._check_access(tenant_id)
        self._run_tenants[run_id] = tenant_id
        identity = RunIdentity(tenant_id, run_id, experiment_name)
        return ActiveRun(
            self,
            identity,
            calls,
            start_time,
            artifact_uri=self._artifact_uri(identity),
            joined=True,
        )

    @property
    def artifacts(self) -> ArtifactUploader:
        """The background uploader of the runs' artifacts."""
        return self._artifacts

    def flush(self, timeout: float | None = None) -> DeliveryReport:
        """Sends everything logged so far and waits, bounded, for Kafka's acknowledgement.

        Returns what is still undelivered when the timeout ran out (logged as a warning).
        """
        limit = self._settings.flush_timeout_s if timeout is None else timeout
        if self._sender is None:
            return DeliveryReport(0, 0, 0)
        report = self._sender.flush(limit)
        if not report.complete:
            logger.warning(
                "after %.1fs, %d logging calls and %d events are not yet acknowledged by Kafka"
                " at %s (%d of them in the spool %s); they are retried in the background",
                limit,
                report.buffered_calls,
                report.unsent_events + report.in_flight + report.spooled_events,
                self._settings.kafka.bootstrap_servers,
                report.spooled_events,
                report.spool_path,
            )
        return report

    def undelivered(self) -> DeliveryReport:
        """What Kafka has not acknowledged yet, now: in memory, in flight, in the spool,
        and the points dropped so far. A snapshot; it neither flushes nor waits."""
        sender = self._sender
        return DeliveryReport(0, 0, 0) if sender is None else sender.report()

    def get_metric_history(
        self, run_id: str, key: str, tenant_id: str | None = None, wait: bool = True
    ) -> list[MetricHistoryPoint]:
        """The full history of one metric, read from MLflow.

        Args:
            run_id: the run's id.
            key: the metric key.
            tenant_id: the run's tenant; known already for runs this tracker started.
            wait: for a run this tracker logged, first wait (at most ``read_wait_s``)
                until the workers have written everything Kafka acknowledged.

        Returns:
            ``[{"key", "value", "timestamp", "step"}, ...]`` ordered by step.
        """
        tenant = tenant_id or self._run_tenants.get(run_id) or self._settings.tenant_id
        if tenant is None:
            raise InvalidEventError("tenant_id is required for a run this tracker did not start")
        if wait and self._sender is not None:
            self.wait_written(tenant, run_id)
        if self._reader is None:
            # MLflow is imported on the first read: a trainer that only logs never loads it.
            from ingest.tracking.reader import RunReader  # noqa: PLC0415

            self._reader = RunReader(self._settings.mlflow.tracking_uri)
        return self._reader.get_metric_history(tenant, run_id, key)

    def close(self, timeout: float | None = None) -> DeliveryReport:
        """Flushes (bounded) and stops the background sender; returns within ``timeout``
        (default ``flush_timeout_s``) plus a fraction of a second.

        What Kafka has not acknowledged by then stays in this process's spool on disk,
        and one log line says how much, where, and how to deliver it. Artifacts still
        uploading share the bound; those not stored are named in one line.
        """
        sender, self._sender = self._sender, None
        if sender is None:
            return DeliveryReport(0, 0, 0)
        limit = self._settings.flush_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + limit
        missing = self._artifacts.wait(None, limit)
        if missing:
            logger.error(
                "closing with %d artifacts not stored (their runs do not record them): %s",
                len(missing),
                "; ".join(missing),
            )
        report = sender.close(max(deadline - time.monotonic(), 0.0))
        lost = report.buffered_calls + report.unsent_events
        if report.spooled_events or lost:
            logger.error(
                "closing with %d events (%d metric points) not acknowledged by Kafka at %s:"
                " they are kept in the spool %s; deliver them with `matih-ingest spool flush"
                " --spool-dir %s`%s",
                report.spooled_events,
                report.spooled_points,
                self._settings.kafka.bootstrap_servers,
                report.spool_path,
                self._settings.spool_dir,
                f" ({lost} calls or events could not be spooled and are lost)" if lost else "",
            )
        return report

    def __enter__(self) -> ExperimentTracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _artifact_uri(self, run: RunIdentity) -> str:
        """Where the workers' MLflow run keeps artifacts (its experiment's rule)."""
        location = experiment_artifact_location(self._settings.mlflow.artifact_root, run.tenant_id)
        return run_artifact_uri(location, run.run_id)

    def _ensure_sender(self) -> Calls:
        """Starts the sender on the first run (and the first after a ``close``); returns
        what the run's calls append to."""
        with self._lock:
            if self._sender is None:
                # The Kafka side (aiokafka, the delivery path) loads with the first run,
                # not with ``import producers``, which every rank and every tool that
                # only builds settings pays for.
                if self._settings.sender == "process":
                    from producers.delivery.process import SenderProcess  # noqa: PLC0415

                    try:
                        process = SenderProcess(self._settings, self._metrics)
                    except OSError as exc:
                        logger.warning(
                            "cannot start the SDK's sender process (%s): sending from a thread",
                            exc,
                        )
                    else:
                        self._sender, self._calls = process, process.ring
                if self._sender is None:
                    from producers.delivery.sender import BackgroundSender  # noqa: PLC0415

                    self._sender = BackgroundSender(self._settings, self._buffer, self._metrics)
                    self._calls = self._buffer
                self._sender.start()
                atexit.register(self.close)
            return self._calls

    def _add_event(self, event: EventEnvelope) -> None:
        """Where artifacts' claim checks go: the current sender's calls."""
        self._calls.add_event(event)

    def _check_access(self, tenant_id: str) -> None:
        """Once per tenant, with SASL: a credential or ACL that can never let the
        events through fails the call that starts the run, instead of spooling them
        forever. Kafka out of reach proves nothing either way: the run goes on, spooled.
        """
        settings = self._settings
        if not settings.kafka.sasl or tenant_id in self._granted:
            return
        sender = self._sender
        assert sender is not None
        bound = settings.connect_timeout_s + settings.kafka.request_timeout_s
        try:
            sender.check_write_access(tenant_id, bound + 1)
        except (KafkaUnavailableError, TimeoutError):
            return
        self._granted.add(tenant_id)

    def wait_written(self, tenant_id: str, run_id: str) -> None:
        """Read-your-writes: waits until the workers have written everything of the run
        that Kafka acknowledged (each bound is the settings' flush and read waits).

        Returns at once for a run this tracker never logged; a wait that runs out, or
        Kafka out of reach, is one warning, and the read that follows may miss writes.
        """
        sender = self._sender
        if sender is None:
            return
        sender.flush(self._settings.flush_timeout_s)
        position = sender.positions.get((tenant_id, run_id))
        if position is None:
            return
        try:
            caught_up = sender.wait_committed(
                position,
                self._settings.read_wait_s,
                self._settings.read_wait_s + self._settings.kafka.request_timeout_s,
            )
        except (KafkaUnavailableError, TimeoutError) as exc:
            logger.warning("reading without waiting for the workers: %s", exc)
            return
        if not caught_up:
            logger.warning(
                "the workers of group %r have not written run %s up to offset %d within %.0fs;"
                " the history may be incomplete",
                self._settings.kafka.consumer_group,
                run_id,
                position.offset,
                self._settings.read_wait_s,
            )
