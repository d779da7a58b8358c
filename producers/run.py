"""``ActiveRun``: the handle a trainer logs through.

Every call validates its input at once (so a mistake raises here, in the training
loop, not later in a worker) and then only appends to the in-memory buffer: no
network round trip, no serialization on the caller's thread.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ingest.errors import InvalidEventError
from ingest.events import ParamsLogged, RunEnded, RunStatus, TagsSet
from ingest.validation import (
    INT64_MAX,
    INT64_MIN,
    MAX_PARAM_VALUE_LENGTH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS_PER_BATCH,
    check_key,
    check_metric_value,
    check_step,
    check_tag_key,
    check_text,
    check_timestamp_ms,
)
from producers.artifacts import artifact_files
from producers.delivery.buffer import Calls, RunIdentity
from producers.errors import RunStateError

if TYPE_CHECKING:
    from producers.tracker import ExperimentTracker

logger = logging.getLogger(__name__)


class RunMetrics(BaseModel):
    """A set of metric values at one step, for ``ActiveRun.log_metrics``."""

    model_config = ConfigDict(frozen=True)

    metrics: dict[str, float] = Field(examples=[{"train_loss": 0.342, "val_loss": 0.389}])
    step: int | None = Field(default=None, examples=[15])


class ActiveRun:
    """A run in progress. Use it as a context manager, or call ``end()``.

    Leaving the ``with`` block ends the run: ``finished`` normally, ``failed`` when an
    exception escapes (it is re-raised), ``killed`` on ``KeyboardInterrupt``; then it
    waits, at most the flush timeout, until Kafka acknowledged the run's events.
    """

    def __init__(
        self,
        tracker: ExperimentTracker,
        identity: RunIdentity,
        buffer: Calls,
        start_time: int,
        *,
        artifact_uri: str,
        joined: bool = False,
    ) -> None:
        self._tracker = tracker
        self._artifact_uri = artifact_uri
        self._joined = joined
        self._identity = identity
        self._buffer = buffer
        self._known_keys: set[str] = set()
        self._status = RunStatus.RUNNING
        self.start_time = start_time
        """Start time, Unix milliseconds."""
        self.end_time: int | None = None
        """End time, Unix milliseconds, once ended."""

    @property
    def run_id(self) -> str:
        """The run's id (a UUIDv7 in hex), the same in MLflow's ``matih.run_id`` tag."""
        return self._identity.run_id

    @property
    def tenant_id(self) -> str:
        """The tenant that owns the run."""
        return self._identity.tenant_id

    @property
    def experiment_name(self) -> str:
        """The experiment the run belongs to, within its tenant."""
        return self._identity.experiment_name

    @property
    def artifact_uri(self) -> str:
        """Where the run's artifacts are stored: ``<artifact root>/<tenant>/<run id>/artifacts``
        (``MATIH_MLFLOW_ARTIFACT_ROOT``), the location the workers give the MLflow run."""
        return self._artifact_uri

    @property
    def status(self) -> RunStatus:
        """``running`` until the run is ended."""
        return self._status

    def log_metrics(
        self,
        metrics: Mapping[str, float] | RunMetrics,
        step: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Logs metric values at one step.

        Args:
            metrics: key to number; or a ``RunMetrics``, whose step applies if ``step``
                is not given.
            step: the training step (default 0, as in MLflow).
            timestamp: Unix milliseconds; now by default.

        Raises:
            InvalidEventError: a key MLflow forbids, a value that is not a number, or a
                step that is not a 64-bit integer. Nothing of the call is logged then.
            RunStateError: the run has ended.
        """
        if isinstance(metrics, RunMetrics):
            step = metrics.step if step is None else step
            metrics = metrics.metrics
        self._check_running()
        ts = (
            time.time_ns() // 1_000_000
            if timestamp is None
            else _checked(check_timestamp_ms, timestamp)
        )
        if step is None:
            step = 0
        elif type(step) is not int or not INT64_MIN <= step <= INT64_MAX:
            step = _checked(check_step, step)
        known = self._known_keys
        points = []
        try:
            for key, given in metrics.items():
                if key not in known:
                    known.add(check_key(key, "metric key"))
                value = (
                    given
                    if type(given) is float
                    else check_metric_value(given, f"metric {key!r} value")
                )
                points.append((key, value))
        except AttributeError:
            raise InvalidEventError(
                f"metrics must be a mapping of key to number, got {type(metrics).__name__}"
            ) from None
        except ValueError as exc:
            raise InvalidEventError(str(exc)) from None
        if points:
            self._buffer.add_metrics(self._identity, step, ts, points)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Logs one metric value; see ``log_metrics``."""
        self.log_metrics({key: value}, step=step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Logs parameters; values are converted to strings (MLflow requirement).

        Raises:
            InvalidEventError: a key MLflow forbids or a value over 6000 characters.
        """
        self._check_running()
        values = _string_values(params, "param", MAX_PARAM_VALUE_LENGTH)
        for chunk in _chunks(values, MAX_PARAMS_PER_BATCH):
            self._buffer.add_event(ParamsLogged(**self._envelope(), params=chunk))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Sets tags; values are converted to strings.

        Raises:
            InvalidEventError: a key MLflow forbids or a value over 8000 characters.
        """
        self._check_running()
        values = _string_values(tags, "tag", MAX_TAG_VALUE_LENGTH, check_tag_key)
        for chunk in _chunks(values, MAX_TAGS_PER_BATCH):
            self._buffer.add_event(TagsSet(**self._envelope(), tags=chunk))

    def set_tag(self, key: str, value: Any) -> None:
        """Sets one tag; see ``set_tags``."""
        self.set_tags({key: value})

    def log_batch(
        self,
        metrics: Sequence[Mapping[str, Any]] = (),
        params: Sequence[Mapping[str, Any]] | Mapping[str, Any] = (),
        tags: Sequence[Mapping[str, Any]] | Mapping[str, Any] = (),
    ) -> None:
        """Logs metrics, params and tags in one call, in the spec's batch shape.

        Args:
            metrics: ``{"key", "value", "step"[, "timestamp"]}`` entries.
            params: ``{"key", "value"}`` entries, or a mapping.
            tags: ``{"key", "value"}`` entries, or a mapping.

        Raises:
            InvalidEventError: any entry breaks a rule; nothing of the call is logged then.
        """
        self._check_running()
        param_values = _string_values(
            _as_mapping(params, "params"), "param", MAX_PARAM_VALUE_LENGTH
        )
        tag_values = _string_values(
            _as_mapping(tags, "tags"), "tag", MAX_TAG_VALUE_LENGTH, check_tag_key
        )
        calls: list[tuple[int, int, list[tuple[str, float]]]] = []
        now = time.time_ns() // 1_000_000
        for index, entry in enumerate(metrics):
            where = f"metrics[{index}]"
            try:
                key = check_key(entry["key"], f"{where}.key")
                value = check_metric_value(entry["value"], f"{where}.value")
                step = check_step(entry.get("step", 0), f"{where}.step")
                ts = check_timestamp_ms(entry.get("timestamp", now), f"{where}.timestamp")
            except KeyError as exc:
                raise InvalidEventError(f"{where} needs a {exc.args[0]!r}") from None
            except (TypeError, AttributeError):
                raise InvalidEventError(
                    f"{where} must be a mapping with key, value, step"
                ) from None
            except ValueError as exc:
                raise InvalidEventError(str(exc)) from None
            calls.append((step, ts, [(key, value)]))
        for step, ts, points in calls:
            self._buffer.add_metrics(self._identity, step, ts, points)
        for chunk in _chunks(param_values, MAX_PARAMS_PER_BATCH):
            self._buffer.add_event(ParamsLogged(**self._envelope(), params=chunk))
        for chunk in _chunks(tag_values, MAX_TAGS_PER_BATCH):
            self._buffer.add_event(TagsSet(**self._envelope(), tags=chunk))

    def log_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Stores a file with the run, in the background (claim check: the bytes go to the
        run's artifact location, Kafka carries only its path, size and SHA-256).

        Args:
            local_path: the file.
            artifact_path: the folder under the run's artifact root; the root by default.

        Raises:
            InvalidEventError: the file is missing or unreadable, or the path would leave
                the run's artifact root (``..``, a leading ``/``).
        """
        self._check_running()
        self._tracker.artifacts.submit(
            artifact_files(self._identity, self._artifact_uri, local_path, artifact_path)
        )

    def log_artifacts(
        self, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Stores every file under a folder with the run, keeping their relative paths; see
        ``log_artifact``. Nothing is stored if any file is refused."""
        self.log_artifact(local_dir, artifact_path)

    def wait_for_artifacts(self) -> list[str]:
        """Waits, at most ``artifact_wait_s``, until the artifacts logged so far are stored;
        returns those that are not (``"<path> (<why>)"``), none when all are."""
        return self._tracker.artifacts.wait(self.run_id, self._tracker.settings.artifact_wait_s)

    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> None:
        """Ends the run with ``finished``, ``failed`` or ``killed`` and flushes its events.

        The run's artifacts are stored first (waiting at most ``artifact_wait_s``); any
        that are not are reported in one line, and the run records only those stored.

        Raises:
            InvalidEventError: ``status`` does not end a run.
        """
        self._check_running()
        missing = self.wait_for_artifacts()
        if missing:
            logger.error(
                "run %s ends without %d of its artifacts: %s",
                self.run_id,
                len(missing),
                "; ".join(missing),
            )
        try:
            final = RunStatus(status)
            event = RunEnded(**self._envelope(), status=final, end_time=time.time_ns() // 1_000_000)
        except ValueError as exc:
            raise InvalidEventError(
                f"status {status!r} does not end a run; use finished, failed or killed"
            ) from exc
        if not self._joined:  # a joined rank leaves the run's status to rank 0
            self._buffer.add_event(event)
        self._status = final
        self.end_time = event.end_time
        self._tracker.flush()

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._status is not RunStatus.RUNNING:
            return
        if exc_type is None:
            self.end(RunStatus.FINISHED)
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end(RunStatus.KILLED)
        else:
            self.end(RunStatus.FAILED)

    def _check_running(self) -> None:
        if self._status is not RunStatus.RUNNING:
            raise RunStateError(
                f"run {self.run_id} has ended ({self._status.value}); start a new run"
            )

    def _envelope(self) -> dict[str, str]:
        identity = self._identity
        return {
            "tenant_id": identity.tenant_id,
            "run_id": identity.run_id,
            "experiment_name": identity.experiment_name,
        }


def _chunks(values: dict[str, str], size: int) -> list[dict[str, str]]:
    """Splits params or tags into events MLflow takes in one call (and so of bounded size)."""
    items = list(values.items())
    return [dict(items[start : start + size]) for start in range(0, len(items), size)]


def _checked(check: Any, value: object) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        raise InvalidEventError(str(exc)) from None


def _as_mapping(
    entries: Sequence[Mapping[str, Any]] | Mapping[str, Any], what: str
) -> Mapping[str, Any]:
    if isinstance(entries, Mapping):
        return entries
    values: dict[str, Any] = {}
    for index, entry in enumerate(entries):
        try:
            key, value = entry["key"], entry["value"]
        except (KeyError, TypeError):
            raise InvalidEventError(
                f"{what}[{index}] must be a mapping with 'key' and 'value'"
            ) from None
        if key in values and str(values[key]) != str(value):
            raise InvalidEventError(
                f"{what}[{index}]: key {key!r} appears twice with different values"
            )
        values[key] = value
    return values


def _string_values(
    values: Mapping[str, Any],
    what: str,
    limit: int,
    check: Callable[[object, str], str] = check_key,
) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise InvalidEventError(
            f"{what}s must be a mapping of key to value, got {type(values).__name__}"
        )
    result = {}
    for key, value in values.items():
        text = str(value)
        try:
            check(key, f"{what} key")
            check_text(text, limit, f"{what} {key!r} value")
        except ValueError as exc:
            raise InvalidEventError(str(exc)) from None
        result[key] = text
    return result
