"""Entry point: `streamlit run app.py`. Routes only; every page calls into `mediagen`."""

import os
import sys
from contextlib import asynccontextmanager

import streamlit as st
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from streamlit.runtime.pages_manager import PagesManager

from mediagen import server
from mediagen.api import apps as api_apps
from mediagen.api.answers import EXCEPTION_HANDLERS
from mediagen.api.links import SignedMedia
from mediagen.api.routes import ROUTES
from mediagen.auth.exposure import auth_problems, exposure_refusal
from mediagen.config import Settings
from mediagen.errors import MediagenError
from mediagen.ui import services
from mediagen.ui.navigation import build_navigation, run_page

# Our pages live in pages/ but st.navigation routes them. Without this, the first session of a
# fresh server that opens a page's URL directly (a shared gallery link) ran that file on its own,
# in Streamlit's older pages-directory mode: no navigation, no page config.
PagesManager.uses_pages_directory = False

_settings = Settings()
_settings.media_dir.mkdir(parents=True, exist_ok=True)
# Whether sign-in is configured, asked of Streamlit's secrets at most once a second: the API, the
# /cdn guard and the signing of media URLs follow it without a restart.
_sign_in = api_apps.rechecked(services.auth_configured)


def _refuse_to_start(reason: str) -> None:
    """One line saying why, then exit 3. Nothing has started yet; raising SystemExit here would
    bury the line under the server's traceback of a failed lifespan."""
    print(f"mediagen: {reason}", file=sys.stderr, flush=True)
    os._exit(3)


@asynccontextmanager
async def lifespan(_app):
    signed_in = services.auth_configured()
    refusal = exposure_refusal(st.get_option("server.address"), signed_in, _settings.allow_unauthenticated)
    if refusal is None and signed_in:
        problems = auth_problems(st.secrets["auth"])
        refusal = "sign-in is half configured: " + "; ".join(problems) if problems else None
    if refusal:
        _refuse_to_start(refusal)
    # Once per server process: never per browser session, so there is at most one worker here.
    try:
        # The address and port Streamlit really listens on (set by `make run HOST=… PORT=…` or
        # --server.port), read after it bound them: media URLs follow them.
        server.start(st.get_option("server.address"), st.get_option("server.port"), _sign_in)
    except MediagenError as exc:  # a setting that cannot work (an alias to nowhere): say which
        _refuse_to_start(str(exc))
    try:
        yield None
    finally:
        server.stop()


app = st.App(
    __file__,
    routes=[
        # The local storage backend's files, on the app's own port, with Range support (206);
        # with sign-in on, only through signed URLs that have not expired.
        Mount("/cdn", app=SignedMedia(StaticFiles(directory=_settings.media_dir), _settings, _sign_in), name="cdn"),
        *ROUTES,
        # The HTTP API (README: HTTP API): /api seed-compatible, /v1 OpenAI-compatible.
        *api_apps.build(services.auth_configured),
    ],
    exception_handlers=EXCEPTION_HANDLERS,
    lifespan=lifespan,
)

# Uvicorn imports this file once as a module to find `app`; Streamlit then runs it as
# `__main__` for every browser session, which is when the page should render.
if __name__ == "__main__":
    run_page(build_navigation())
