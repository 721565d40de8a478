"""The error tree as HTTP answers, in one place: each error class's ``http_status``, its message
as the body, and nothing else (no traceback ever leaves the server)."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..errors import MediagenError, http_status
from . import problems

log = logging.getLogger(__name__)


async def error_answer(request: Request, exc: Exception) -> Response:
    if http_status(exc) >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    return PlainTextResponse(str(exc), status_code=http_status(exc))


async def unrouted(request: Request, exc: Exception) -> Response:
    """A path no route matched (one with a newline cannot match the API's mounts): under the API's
    prefixes the answer is still the API's JSON error, elsewhere Starlette's plain one."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith(API_PREFIXES):
        return await problems.http_error(request, exc)
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)


API_PREFIXES = ("/api/", "/v1/")

# For ``st.App(exception_handlers=...)``; anything else is Starlette's plain 500, logged.
EXCEPTION_HANDLERS = {MediagenError: error_answer, HTTPException: unrouted}
