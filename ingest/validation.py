"""MLflow's rules for what a run may hold, checked before anything is sent.

MLflow rejects a whole ``log_batch`` call for one bad key, so every producer checks
each key and value here, at the call, where the user can still fix it. The rules
mirror MLflow 3's own (``mlflow/utils/validation.py``).
"""

from __future__ import annotations

import posixpath
import re

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_NAME_LENGTH = 250
MAX_DESCRIPTION_LENGTH = 5000
MAX_EXPERIMENT_NAME_LENGTH = 400
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
RESERVED_TAG_PREFIX = "matih."
"""Tags under this prefix are written by the workers only (tenant, producer run id)."""
ARTIFACT_TAG_PREFIX = f"{RESERVED_TAG_PREFIX}artifact."
"""On runs: one tag per artifact stored by claim check, ``<prefix><path>``, whose value is
``<size> <sha256>``. MLflow keeps no metadata per file, and a tag is written idempotently
by both write paths and rebuilt by a replay."""
MAX_ARTIFACT_PATH_LENGTH = MAX_KEY_LENGTH - len(ARTIFACT_TAG_PREFIX)
"""The workers record an artifact under a tag named for its path."""

_KEY_CHARACTERS = re.compile(r"^[/\w.\- :]*$")
_TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_key(key: object, what: str = "key") -> str:
    """Returns ``key`` if MLflow accepts it as a metric, param or tag key.

    Raises:
        ValueError: naming the rule that ``key`` breaks.
    """
    if not isinstance(key, str):
        raise ValueError(f"{what} must be a string, got {type(key).__name__}")
    if not key:
        raise ValueError(f"{what} must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(
            f"{what} {key[:40]!r}... is {len(key)} characters; at most {MAX_KEY_LENGTH}"
        )
    if _KEY_CHARACTERS.match(key) is None:
        raise ValueError(
            f"{what} {key!r} may only contain alphanumerics, underscores, dashes, periods,"
            " spaces, colons and slashes"
        )
    normal = posixpath.normpath(key)
    if normal != key or normal == "." or normal.startswith(("..", "/")):
        raise ValueError(
            f"{what} {key!r} would resolve to the path {normal!r}: no leading '/', no '..',"
            " no '//', './' or trailing '/'"
        )
    return key


def check_tag_key(key: object, what: str = "tag key") -> str:
    """Returns ``key`` if a run may carry it as a tag: MLflow accepts it, and it is not reserved.

    The ``matih.`` tags say which tenant owns a run and which producer run it is; a
    producer that could set them could move a run to another tenant.

    Raises:
        ValueError: naming the rule that ``key`` breaks.
    """
    checked = check_key(key, what)
    if checked.startswith(RESERVED_TAG_PREFIX):
        raise ValueError(
            f"{what} {checked!r}: the prefix {RESERVED_TAG_PREFIX!r} is reserved for"
            " matih-ingest's own tags; choose another key"
        )
    return checked


def check_artifact_path(path: object, what: str = "artifact path") -> str:
    """Returns ``path`` if it names a file inside a run's artifact root: relative, in ``/``
    form, and with a name MLflow takes as a key (the workers record each artifact under
    it), so never ``..``, a leading ``/`` or a backslash.

    Raises:
        ValueError: naming the rule that ``path`` breaks.
    """
    if isinstance(path, str) and (path.startswith("/") or "\\" in path or ".." in path.split("/")):
        raise ValueError(
            f"{what} {path!r} escapes the run's artifact root: give a relative path without"
            " '..', a leading '/' or '\\'"
        )
    checked = check_key(path, what)
    if len(checked) > MAX_ARTIFACT_PATH_LENGTH:
        raise ValueError(
            f"{what} {checked[:40]!r}... is {len(checked)} characters; at most"
            f" {MAX_ARTIFACT_PATH_LENGTH}"
        )
    return checked


def check_metric_value(value: object, what: str = "value") -> float:
    """Returns ``value`` as a float if it is a real number (bools and strings are not).

    NaN and infinities are numbers to MLflow and are kept.
    """
    if isinstance(value, bool | str | bytes):
        raise ValueError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {type(value).__name__}") from None


def check_step(step: object, what: str = "step") -> int:
    """Returns ``step`` if it is an integer that fits in 64 bits."""
    if isinstance(step, bool) or not isinstance(step, int):
        if isinstance(step, float) and step.is_integer():
            step = int(step)
        else:
            raise ValueError(f"{what} must be an integer, got {type(step).__name__} {step!r}")
    if not INT64_MIN <= step <= INT64_MAX:
        raise ValueError(f"{what} {step} does not fit in a 64-bit integer")
    return step


def check_timestamp_ms(timestamp: object, what: str = "timestamp") -> int:
    """Returns ``timestamp`` if it is a non-negative integer count of Unix milliseconds."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise ValueError(f"{what} must be an integer of Unix milliseconds, got {timestamp!r}")
    if not 0 <= timestamp <= INT64_MAX:
        raise ValueError(f"{what} must be a non-negative count of Unix milliseconds")
    return timestamp


def check_text(value: object, limit: int, what: str) -> str:
    """Returns ``value`` if it is a string of at most ``limit`` characters."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters; at most {limit}")
    return value


def check_tenant_id(value: object) -> str:
    """Returns ``value`` if it is a tenant id: 1-64 of letters, digits, '.', '_' and '-'."""
    if not isinstance(value, str) or _TENANT_ID.match(value) is None:
        raise ValueError(
            f"tenant id {value!r} must be 1-64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return value
