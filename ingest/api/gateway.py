"""The gateway's use cases: turn requests into run events, publish them, read back.

Writes never touch MLflow: they become events on Kafka and are answered once
Kafka acknowledged them, with a consistency token. Reads come from MLflow; given a
token they first wait, bounded, until the workers have committed past it.
"""

from __future__ import annotations

import time
from typing import TypeVar

from pydantic import ValidationError

from ingest.api.catalog import RunCatalog, RunRef
from ingest.api.errors import ApiError
from ingest.api.publishing import GatewayPublisher
from ingest.api.responses import Accepted, BatchAccepted, RunCreatedView, RunEndedView
from ingest.api.schemas import BatchLog, MetricsLog, ParamsLog, RunCreate
from ingest.api.settings import ApiSettings
from ingest.api.views import duration_seconds
from ingest.codec import describe
from ingest.errors import InvalidEventError
from ingest.events import (
    EventEnvelope,
    MetricPoint,
    MetricsLogged,
    ParamsLogged,
    RunCreated,
    RunEnded,
    RunStatus,
    TagsSet,
)
from ingest.ids import new_run_id, run_start_ms
from ingest.layout import experiment_id_of
from ingest.topics import events_topic
from ingest.tracking.consistency import Position, wait_committed

E = TypeVar("E", bound=EventEnvelope)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RunGateway:
    """Runs of the tenants, through Kafka and MLflow.

    Args:
        settings: the gateway's settings.
        publisher: the connection to Kafka.
        catalog: what is known of runs and experiments.
    """

    def __init__(
        self, settings: ApiSettings, publisher: GatewayPublisher, catalog: RunCatalog
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.catalog = catalog

    async def create_run(self, tenant_id: str, body: RunCreate) -> RunCreatedView:
        """Starts a run: publishes its ``RunCreated`` event."""
        if body.experiment_name is not None:
            experiment_name = body.experiment_name
        else:
            assert body.experiment_id is not None
            experiment_name = await self.catalog.experiment_name(tenant_id, body.experiment_id)
        run_id = new_run_id()
        start_time = run_start_ms(run_id)
        event = _event(
            RunCreated,
            tenant_id=tenant_id,
            run_id=run_id,
            experiment_name=experiment_name,
            run_name=body.name,
            description=body.description,
            tags=body.tags,
            user_id=body.user_id,
            start_time=start_time,
        )
        position = await self.publisher.send([event])
        self.catalog.remember(RunRef(tenant_id, run_id, experiment_name, start_time))
        return RunCreatedView(
            run_id=run_id,
            experiment_id=experiment_id_of(tenant_id, experiment_name),
            experiment_name=experiment_name,
            name=body.name,
            start_time=start_time,
            consistency_token=position.token(),
        )

    async def log_metrics(self, tenant_id: str, run_id: str, body: MetricsLog) -> Accepted:
        """Publishes a ``MetricsLogged`` event: every metric at the body's step."""
        ref = await self._run(tenant_id, run_id)
        timestamp = _now_ms() if body.timestamp is None else body.timestamp
        points = [
            MetricPoint(key=key, value=value, step=body.step, timestamp=timestamp)
            for key, value in body.metrics.items()
        ]
        event = _event(MetricsLogged, **_envelope(ref), metrics=tuple(points))
        position = await self.publisher.send([event])
        return Accepted(run_id=run_id, event_id=event.event_id, consistency_token=position.token())

    async def log_params(self, tenant_id: str, run_id: str, body: ParamsLog) -> Accepted:
        """Publishes a ``ParamsLogged`` event."""
        ref = await self._run(tenant_id, run_id)
        event = _event(ParamsLogged, **_envelope(ref), params=body.params)
        position = await self.publisher.send([event])
        return Accepted(run_id=run_id, event_id=event.event_id, consistency_token=position.token())

    async def log_batch(self, tenant_id: str, run_id: str, body: BatchLog) -> BatchAccepted:
        """Publishes one event per kind of item the batch holds, in one go."""
        ref = await self._run(tenant_id, run_id)
        now = _now_ms()
        events: list[EventEnvelope] = []
        if body.metrics:
            points = tuple(
                MetricPoint(
                    key=m.key,
                    value=m.value,
                    step=m.step,
                    timestamp=now if m.timestamp is None else m.timestamp,
                )
                for m in body.metrics
            )
            events.append(_event(MetricsLogged, **_envelope(ref), metrics=points))
        if body.params:
            params = {p.key: p.value for p in body.params}
            events.append(_event(ParamsLogged, **_envelope(ref), params=params))
        if body.tags:
            tags = {t.key: t.value for t in body.tags}
            events.append(_event(TagsSet, **_envelope(ref), tags=tags))
        position = await self.publisher.send(events)
        return BatchAccepted(
            run_id=run_id,
            event_ids=[event.event_id for event in events],
            consistency_token=position.token(),
        )

    async def end_run(self, tenant_id: str, run_id: str, status: RunStatus) -> RunEndedView:
        """Publishes a ``RunEnded`` event; the duration runs from the run's start time.

        Raises:
            ApiError: 409 when the run has ended already.
        """
        ref = await self._run(tenant_id, run_id)
        if ref.ended:
            raise ApiError(409, "conflict", f"run {run_id} has ended already")
        end_time = max(_now_ms(), ref.start_time)
        event = _event(RunEnded, **_envelope(ref), status=status, end_time=end_time)
        position = await self.publisher.send([event])
        self.catalog.mark_ended(ref)
        return RunEndedView(
            run_id=run_id,
            status=status,
            duration_seconds=duration_seconds(ref.start_time, end_time),
            consistency_token=position.token(),
        )

    async def wait_for(self, token: str | None) -> None:
        """Waits until the workers have written past ``token`` (if given).

        Raises:
            ApiError: 422 for a token that is not this gateway's; 504 when the workers
                did not get there within ``read_wait_s``.
            KafkaUnavailableError: Kafka did not answer.
        """
        if token is None:
            return
        position = self._position(token)
        if not await wait_committed(self.settings.kafka, [position], self.settings.read_wait_s):
            raise ApiError(
                504,
                "not_yet_written",
                f"the workers have not written up to {token} within"
                f" {self.settings.read_wait_s:g}s; retry, or read without ?after=",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )

    def _position(self, token: str) -> Position:
        try:
            position = Position.parse(token)
        except InvalidEventError as exc:
            raise ApiError.invalid("query.after", str(exc)) from None
        kafka = self.settings.kafka
        if position.topic != events_topic(kafka) or position.partition >= kafka.partitions:
            raise ApiError.invalid(
                "query.after", f"{token!r} is not a position in this gateway's topic"
            )
        return position

    async def _run(self, tenant_id: str, run_id: str) -> RunRef:
        ref = await self.catalog.find_run(tenant_id, run_id)
        if ref is None:
            raise ApiError.not_found(f"run {run_id!r}")
        return ref


def _envelope(ref: RunRef) -> dict[str, str]:
    return {
        "tenant_id": ref.tenant_id,
        "run_id": ref.run_id,
        "experiment_name": ref.experiment_name,
    }


def _event(kind: type[E], **fields: object) -> E:
    """Builds an event; a rule the request checks missed is still a 422, never a 500."""
    try:
        return kind(**fields)
    except ValidationError as exc:
        raise InvalidEventError(describe(exc)) from None
