"""Signed, expiring download links.

Streamlit's pages know who is signed in; a plain HTTP route does not. So a page hands out a link
that carries who asked and what for, signed (``signing``: the studio's one mechanism and key),
and the route serves only links it can verify.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote

from itsdangerous import BadSignature, SignatureExpired
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import Settings
from ..errors import Forbidden
from ..jobs.browse import JobFilters
from ..library import zips
from ..signing import serializer
from ..storage.serving import check_media_link

LINK_LIFETIME_S = 3600


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
    token = serializer(settings, "zip").dumps(wanted)
    return f"/library/zip?name={quote(zips.download_name(name).removesuffix('.zip'))}&t={token}"


def read_zip_link(settings: Settings, token: str) -> dict[str, Any]:
    """What a zip link asks for; ``Forbidden`` when it is not ours or has expired."""
    try:
        wanted: dict[str, Any] = serializer(settings, "zip").loads(token, max_age=LINK_LIFETIME_S)
    except SignatureExpired:
        raise Forbidden("this download link has expired; ask for it again in the gallery") from None
    except BadSignature:
        raise Forbidden("this download link is not valid; ask for it in the gallery") from None
    return wanted


class SignedMedia:
    """``/cdn`` with sign-in on serves only media URLs the studio signed (``Serving.url``), until
    they expire; anything else is refused (403, saying what is wrong). Without sign-in every file
    is served as before. Valid requests reach the files unchanged, Range requests included."""

    def __init__(self, files: ASGIApp, settings: Settings, sign_in: Callable[[], bool]) -> None:
        self.files = files
        self.settings = settings
        self.sign_in = sign_in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.sign_in():
            query = parse_qs(scope["query_string"].decode("latin-1"))
            try:
                check_media_link(
                    self.settings,
                    _below_mount(scope).lstrip("/"),
                    next(iter(query.get("expires", [])), None),
                    next(iter(query.get("signature", [])), None),
                )
            except Forbidden as exc:
                await PlainTextResponse(str(exc), status_code=exc.http_status)(scope, receive, send)
                return
        await self.files(scope, receive, send)


def _below_mount(scope: Scope) -> str:
    """The request's path inside its mount (Starlette keeps the full path and adds the mount's
    prefix to ``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path
