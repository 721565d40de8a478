"""The two HTTP surfaces as ASGI apps for ``st.App(routes=...)``: ``/api`` (seed-compatible, plus
the OpenAPI document and its docs page) and ``/v1`` (OpenAI-compatible). One OpenAPI document at
``/api/openapi.json`` describes both, with full paths, so a client generator or schemathesis
needs one URL."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import server
from . import comparisons, openai_images, openai_v1, seed, uploads
from .problems import HANDLERS, problem

TITLE = "mediagen API"
# Prompts are at most a few thousand characters: a body beyond this is a mistake or an attack.
MAX_BODY_BYTES = 1024 * 1024
OPENAPI_PATH = "/api/openapi.json"
DOCS_ASSETS = "/api/docs/assets"


class BodyLimit:
    """Refuse (413) a request body over ``MAX_BODY_BYTES``, announced or streamed, before a
    handler reads it into memory; an upload route's multipart body may add the images the
    studio's models take (``uploads.body_allowance``), each capped again as it is parsed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = uploads.body_allowance(scope, MAX_BODY_BYTES, server.studio)
        announced = dict(scope["headers"]).get(b"content-length")
        if announced and announced.isdigit() and int(announced) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _Oversized
            return message

        try:
            await self.app(scope, counted, send)
        except _Oversized:
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        answer = problem(413, f"the request body is over {uploads.mb(limit)}", code="too_large")
        await answer(scope, receive, send)


class _Oversized(Exception):
    pass


def _surface(sign_in: Callable[[], bool], **options: Any) -> FastAPI:
    # No slash redirects: behind a mount their Location loses the mount prefix and lands on the pages.
    app = FastAPI(exception_handlers=HANDLERS, redirect_slashes=False, **options)  # type: ignore[arg-type]
    app.state.sign_in = sign_in
    app.add_middleware(BodyLimit)
    return app


def document() -> dict[str, Any]:
    """The OpenAPI document of both surfaces, paths in full."""
    whole = FastAPI(
        title=TITLE,
        version="1",
        description="The studio's HTTP API: `/api` speaks the replaced system's shapes, `/v1` OpenAI's. "
        "Authenticate with `Authorization: Bearer KEY` or `X-API-Key: KEY`; in local mode (no sign-in) calls "
        "from this machine may go without one.",
        servers=[{"url": "/"}],
    )
    whole.include_router(seed.router, prefix="/api")
    whole.include_router(comparisons.router, prefix="/api")
    whole.include_router(openai_v1.router, prefix="/v1")
    whole.include_router(openai_images.router, prefix="/v1")
    return whole.openapi()


SIGN_IN_RECHECK_S = 1.0


def _swagger_ui_files() -> Path:
    """Swagger UI 5's own files (the swagger-ui-py package ships them): FastAPI's default page
    loads them from a CDN, which a studio used offline or behind a strict proxy cannot reach."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        raise RuntimeError("swagger-ui-py is not installed: make install")
    return Path(spec.origin).parent / "static"


def rechecked(sign_in: Callable[[], bool], every_s: float = SIGN_IN_RECHECK_S) -> Callable[[], bool]:
    """``sign_in`` asked at most once a second. Asking Streamlit's secrets looks for and parses
    the secrets files, which cost a status read a fifth of its time; a second's delay before
    the API follows a newly written ``[auth]`` section is nothing, while keeping it live means
    turning sign-in on never waits for a restart."""
    known: list[tuple[float, bool]] = []

    def cached() -> bool:
        now = time.monotonic()
        if not known or now - known[0][0] >= every_s:
            known[:] = [(now, sign_in())]
        return known[0][1]

    return cached


def build(sign_in: Callable[[], bool]) -> list[Mount]:
    """The mounts to give ``st.App(routes=...)``; ``sign_in`` says whether sign-in is configured."""
    sign_in = rechecked(sign_in)
    api = _surface(sign_in, openapi_url=None, docs_url=None, redoc_url=None)
    api.include_router(seed.router)
    api.include_router(comparisons.router)
    spec = document()

    @api.get("/openapi.json", include_in_schema=False)
    def openapi(_request: Request) -> JSONResponse:
        return JSONResponse(spec)

    @api.get("/docs", include_in_schema=False)
    def docs(_request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_PATH,
            title=TITLE,
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    api.mount(DOCS_ASSETS.removeprefix("/api"), StaticFiles(directory=_swagger_ui_files()), name="docs-assets")

    v1 = _surface(sign_in, openapi_url=None, docs_url=None, redoc_url=None)
    v1.include_router(openai_v1.router)
    v1.include_router(openai_images.router)
    return [Mount("/api", app=api), Mount("/v1", app=v1)]
