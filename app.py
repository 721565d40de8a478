"""Entry point: `streamlit run app.py`. Routes only; every page calls into `mediagen`."""

import sys
from contextlib import asynccontextmanager

import streamlit as st
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from streamlit.runtime.pages_manager import PagesManager

from mediagen import server
from mediagen.api.answers import EXCEPTION_HANDLERS
from mediagen.api.routes import ROUTES
from mediagen.auth.exposure import auth_problems, exposure_refusal
from mediagen.config import Settings
from mediagen.ui import services
from mediagen.ui.navigation import build_navigation, run_page

# Our pages live in pages/ but st.navigation routes them. Without this, the first session of a
# fresh server that opens a page's URL directly (a shared gallery link) ran that file on its own,
# in Streamlit's older pages-directory mode: no navigation, no page config.
PagesManager.uses_pages_directory = False

_settings = Settings()
_settings.media_dir.mkdir(parents=True, exist_ok=True)


@asynccontextmanager
async def lifespan(_app):
    signed_in = services.auth_configured()
    refusal = exposure_refusal(st.get_option("server.address"), signed_in, _settings.allow_unauthenticated)
    if refusal is None and signed_in:
        problems = auth_problems(st.secrets["auth"])
        refusal = "sign-in is half configured: " + "; ".join(problems) if problems else None
    if refusal:
        print(f"mediagen: {refusal}", file=sys.stderr, flush=True)
        raise SystemExit(3)
    # Once per server process: never per browser session, so there is at most one worker here.
    server.start()
    try:
        yield None
    finally:
        server.stop()


app = st.App(
    __file__,
    routes=[
        # The local storage backend's files, on the app's own port, with Range support (206).
        Mount("/cdn", app=StaticFiles(directory=_settings.media_dir), name="cdn"),
        *ROUTES,
    ],
    exception_handlers=EXCEPTION_HANDLERS,
    lifespan=lifespan,
)

# Uvicorn imports this file once as a module to find `app`; Streamlit then runs it as
# `__main__` for every browser session, which is when the page should render.
if __name__ == "__main__":
    run_page(build_navigation())
