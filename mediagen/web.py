"""HTTP routes the app serves beside Streamlit's pages: zip downloads of the library.

Streamlit's pages know who is signed in; a plain HTTP route does not. So the page hands out a
signed, expiring link that carries who asked and what for, and the route serves only links it
can verify (itsdangerous; the key is ``MEDIAGEN_LINK_SECRET`` or a random one per process).
"""

from __future__ import annotations

import secrets
from functools import cache
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from . import runtime, zips
from .browse import JobFilters
from .config import Settings
from .errors import MediagenError, NotFound

LINK_LIFETIME_S = 3600


@cache
def _random_key() -> str:
    return secrets.token_urlsafe(32)


def _signer(settings: Settings) -> URLSafeTimedSerializer:
    key = settings.link_secret.get_secret_value() if settings.link_secret else _random_key()
    return URLSafeTimedSerializer(key, salt="mediagen-zip")


def zip_link(
    settings: Settings,
    owner: str,
    *,
    collection_id: int | None = None,
    job_ids: tuple[str, ...] = (),
    filters: JobFilters | None = None,
    name: str,
) -> str:
    """A link to the zip of a collection of ``owner``, of some jobs, or of the jobs matching
    ``filters``; valid for an hour."""
    wanted: dict[str, Any] = {"owner": owner, "collection": collection_id, "jobs": list(job_ids)}
    if filters is not None:
        wanted["filters"] = filters.to_json()
    token = _signer(settings).dumps(wanted)
    return f"/library/zip?{'name=' + quote(name)}&t={token}"


def zip_download(request: Request) -> Response:
    """GET /library/zip?t=…: the files as one zip, streamed."""
    studio = runtime.studio()
    try:
        wanted: dict[str, Any] = _signer(studio.settings).loads(
            request.query_params.get("t", ""), max_age=LINK_LIFETIME_S
        )
    except SignatureExpired:
        return PlainTextResponse("this download link has expired; ask for it again in the gallery", status_code=403)
    except BadSignature:
        return PlainTextResponse("this download link is not valid; ask for it in the gallery", status_code=403)
    try:
        filters = JobFilters.from_json(wanted["filters"]) if wanted.get("filters") else None
        items = zips.assets_to_zip(
            studio, owner=wanted["owner"], collection_id=wanted["collection"], job_ids=wanted["jobs"], filters=filters
        )
    except NotFound as exc:
        return PlainTextResponse(str(exc), status_code=404)
    except MediagenError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    if not items:
        return PlainTextResponse("nothing to download: the selection holds no files", status_code=404)
    name = quote(request.query_params.get("name") or "mediagen") + ".zip"
    archive = zips.zip_stream(studio, items)
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{name}", "Content-Length": str(len(archive))}
    return StreamingResponse(iter(archive), media_type="application/zip", headers=headers)
