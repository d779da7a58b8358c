"""Events on the wire: UTF-8 JSON values, with the kind and tenant also in headers.

Headers let a consumer route or dead-letter a record without parsing its value.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic_core import to_json

from ingest.errors import InvalidEventError
from ingest.events import Event, EventEnvelope

KIND_HEADER = "matih-kind"
TENANT_HEADER = "matih-tenant"
SCHEMA_HEADER = "matih-schema-version"

_EVENT = TypeAdapter[Event](Event, config=ConfigDict(defer_build=True))  # built at first decode


def encode(event: EventEnvelope) -> bytes:
    """The record value for ``event``."""
    return event.model_dump_json().encode()


def encode_columns(
    envelope: EventEnvelope,
    *,
    keys: Sequence[str],
    key_index: Sequence[int],
    values: Sequence[float],
    steps: Sequence[int],
    timestamps: Sequence[int],
) -> bytes:
    """The record value of a ``MetricsColumns`` with ``envelope``'s fields and these
    columns, already validated.

    The same bytes as ``encode`` of the model, without validating a model: pydantic's
    serializer (NaN and ±Infinity as constants, like the models) on plain lists, which
    is most of what a trainer's sender spends.
    """
    body = envelope.model_dump(
        mode="json", exclude={"keys", "key_index", "values", "steps", "timestamps"}
    )
    body.update(keys=keys, key_index=key_index, values=values, steps=steps, timestamps=timestamps)
    return to_json(body, inf_nan_mode="constants")


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
