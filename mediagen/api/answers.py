"""The error tree as HTTP answers, in one place: each error class's ``http_status``, its message
as the body, and nothing else (no traceback ever leaves the server)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..errors import MediagenError, http_status

log = logging.getLogger(__name__)


async def error_answer(request: Request, exc: Exception) -> Response:
    if http_status(exc) >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    return PlainTextResponse(str(exc), status_code=http_status(exc))


# For ``st.App(exception_handlers=...)``; anything else is Starlette's plain 500, logged.
EXCEPTION_HANDLERS = {MediagenError: error_answer}
