"""Events on the wire: UTF-8 JSON values, with the kind and tenant also in headers.

Headers let a consumer route or dead-letter a record without parsing its value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import TypeAdapter, ValidationError

from ingest.errors import InvalidEventError
from ingest.events import Event, EventEnvelope

KIND_HEADER = "matih-kind"
TENANT_HEADER = "matih-tenant"
SCHEMA_HEADER = "matih-schema-version"

_EVENT = TypeAdapter[Event](Event)
# The same JSON as pydantic writes for events: compact, NaN and ±Infinity as constants.
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode


def encode(event: EventEnvelope) -> bytes:
    """The record value for ``event``."""
    return event.model_dump_json().encode()


def encode_metrics(envelope: EventEnvelope, points: Sequence[tuple[str, float, int, int]]) -> bytes:
    """The record value of a ``MetricsLogged`` with ``envelope``'s fields and these
    (key, value, step, timestamp) points, already validated.

    It decodes to the same event as ``encode`` of the model, without building a model
    per point: about 4x faster, which is what a trainer's sender spends per point.
    """
    body = envelope.model_dump(mode="json", exclude={"metrics"})
    body["metrics"] = [
        {"key": key, "value": value, "step": step, "timestamp": timestamp}
        for key, value, step, timestamp in points
    ]
    return _DUMPS(body).encode()


def headers(event: EventEnvelope) -> list[tuple[str, bytes]]:
    """The record headers for ``event``."""
    return [
        (KIND_HEADER, event.kind.encode()),
        (TENANT_HEADER, event.tenant_id.encode()),
        (SCHEMA_HEADER, str(event.schema_version).encode()),
    ]


def decode(value: bytes | None) -> Event:
    """Parses a record value into its event.

    Raises:
        InvalidEventError: the value is not JSON, or not an event of this contract; the
            message lists each field that is wrong and the rule it breaks.
    """
    if not value:
        raise InvalidEventError("record has no value; expected a JSON run event")
    try:
        return _EVENT.validate_json(value)
    except ValidationError as exc:
        raise InvalidEventError(describe(exc)) from exc


def describe(exc: ValidationError) -> str:
    """One line per problem: ``field.path: message``."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "value"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)
