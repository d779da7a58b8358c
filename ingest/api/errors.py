"""The gateway's errors and how each becomes an HTTP answer.

Every error answers with the same body (``ErrorBody``): a code, a message, and
for invalid input one problem per field naming the field and the rule it breaks.
Kafka or MLflow being unavailable is a 503 with ``Retry-After``; nothing a client
sends becomes a 500.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.errors import IngestError, InvalidEventError, KafkaUnavailableError


class FieldProblem(BaseModel):
    """One field of a request and the rule it breaks."""

    field: str = Field(examples=["body.metrics.val_loss"])
    rule: str = Field(examples=["value must be a number, got str 'high'"])


class ErrorBody(BaseModel):
    """What every error answers."""

    error: str = Field(description="A stable code.", examples=["invalid_request"])
    message: str = Field(description="What was wrong, and what to do.")
    problems: list[FieldProblem] = Field(
        default_factory=list, description="For invalid input: each field and the rule it breaks."
    )


class ApiError(IngestError):
    """An answer other than success, with its status, code and message.

    Args:
        status: the HTTP status.
        code: a stable, machine-readable code.
        message: what was wrong, and what to do.
        problems: for 422, each field and the rule it breaks.
        headers: extra response headers (``WWW-Authenticate``, ``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        problems: list[FieldProblem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems or []
        self.headers = headers
        self.retriable = status in (503, 504)

    @classmethod
    def invalid(cls, field: str, rule: str) -> ApiError:
        """A 422 for one field."""
        return cls(
            422, "invalid_request", f"{field}: {rule}", [FieldProblem(field=field, rule=rule)]
        )

    @classmethod
    def not_found(cls, what: str) -> ApiError:
        """A 404: also the answer for another tenant's resource, which must look missing."""
        return cls(404, "not_found", f"{what} not found")

    def response(self) -> JSONResponse:
        """The HTTP answer."""
        body = ErrorBody(error=self.code, message=self.message, problems=self.problems)
        return JSONResponse(body.model_dump(mode="json"), self.status, headers=self.headers)


class StoreUnavailableError(IngestError):
    """The MLflow store did not answer a read."""

    retriable = True


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No API key, or an unknown one."},
    403: {"model": ErrorBody, "description": "The API key belongs to another tenant."},
    413: {"model": ErrorBody, "description": "The body is larger than the gateway accepts."},
    422: {"model": ErrorBody, "description": "A field breaks a rule; each problem names both."},
    503: {"model": ErrorBody, "description": "Kafka or MLflow is unavailable; see Retry-After."},
}
"""The errors every endpoint may answer, for the OpenAPI document."""


def install(app: FastAPI, retry_after_s: int) -> None:
    """Registers the handlers that turn every error into an ``ErrorBody`` answer."""
    retry_after = {"Retry-After": str(retry_after_s)}

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [_problem(error) for error in exc.errors()]
        message = "; ".join(f"{p.field}: {p.rule}" for p in problems)
        return ApiError(422, "invalid_request", message, problems).response()

    async def invalid_event(_: Request, exc: Exception) -> JSONResponse:
        return ApiError(422, "invalid_request", str(exc)).response()

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        what = "MLflow" if isinstance(exc, StoreUnavailableError) else "Kafka"
        message = f"{what} is unavailable, nothing was done; retry after {retry_after_s}s ({exc})"
        return ApiError(503, "unavailable", message, headers=retry_after).response()

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot decode (not UTF-8 JSON): a bad body,
            # like any other, is a 422 naming it.
            return ApiError.invalid("body", f"{exc.detail}: send UTF-8 JSON").response()
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else None
        return ApiError(exc.status_code, code, str(exc.detail), headers=headers).response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(InvalidEventError, invalid_event)
    app.add_exception_handler(KafkaUnavailableError, unavailable)
    app.add_exception_handler(StoreUnavailableError, unavailable)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _problem(error: Any) -> FieldProblem:
    field = ".".join(str(part) for part in error.get("loc", ())) or "body"
    rule = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    return FieldProblem(field=field, rule=rule)
