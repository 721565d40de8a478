"""Errors as the API answers them, on both surfaces, in OpenAI's shape:
``{"error": {"message", "type", "param", "code"}}`` with the error tree's status, so OpenAI's own
SDKs raise their matching exception classes (BadRequestError, AuthenticationError, ...).

A failed generation is told apart from a refused request: ``failed_generation`` turns a failed
job's recorded reason into the error its caller gets.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..db.tables import Job
from ..errors import InvalidInput, MediagenError, ProviderError, RateLimited, TooLarge, http_status

log = logging.getLogger(__name__)

# OpenAI's ``type`` for each status; its SDKs pick the exception class from the status.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def problem(status: int, message: str, *, param: str | None = None, code: str | None = None) -> JSONResponse:
    error = {"message": message, "type": _TYPES.get(status, "server_error"), "param": param, "code": code}
    return JSONResponse({"error": error}, status_code=status)


async def mediagen_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MediagenError)
    status = http_status(exc)
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    param = exc.field if isinstance(exc, InvalidInput | TooLarge) else None
    answer = problem(status, str(exc), param=param, code=exc.code)
    if isinstance(exc, RateLimited):
        answer.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    return answer


def _field(location: tuple[Any, ...]) -> str:
    # ("body", "n") → "n"; ("query", "limit") → "limit"; a whole-body problem names the body.
    parts = [str(part) for part in location[1:]] or [str(location[0]) if location else "body"]
    return ".".join(parts)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "is not valid"}
    field = _field(tuple(first.get("loc", ("body",))))
    message = f"{field}: {first.get('msg', 'is not valid')}"
    more = len(exc.errors()) - 1
    if more > 0:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return problem(400, message, param=field, code="invalid_input")


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    text = exc.detail if isinstance(exc.detail, str) else "the request was refused"
    if exc.status_code == 404:
        text = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        text = f"{request.method} is not allowed on {request.url.path}"
    return problem(exc.status_code, text, code=None)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path)
    return problem(500, "internal error; the server's log has the details", code="internal_error")


HANDLERS = {
    MediagenError: mediagen_error,
    RequestValidationError: validation_error,
    HTTPException: http_error,
    Exception: internal_error,
}


def failed_generation(job: Job) -> MediagenError:
    """The error a caller who waited for ``job`` gets when it did not succeed."""
    text = f"{job.kind} job {job.id} {job.status}: {job.error_message or 'no reason was recorded'}"
    code = job.error_code or str(job.status)
    if code in {"rate_limited", "quota"}:
        return RateLimited(text, retry_after_s=30, code="insufficient_quota" if code == "quota" else code)
    if code == "content_policy":
        refused = InvalidInput("prompt", text.split(": ", 1)[-1])
        refused.code = "content_policy_violation"
        return refused
    return ProviderError(text, code=code)
