"""Signed, expiring download links.

Streamlit's pages know who is signed in; a plain HTTP route does not. So a page hands out a link
that carries who asked and what for, signed (itsdangerous; the key is ``MEDIAGEN_LINK_SECRET`` or
a random one per process), and the route serves only links it can verify.
"""

from __future__ import annotations

import secrets
from functools import cache
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ..config import Settings
from ..errors import Forbidden
from ..jobs.browse import JobFilters

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


def read_zip_link(settings: Settings, token: str) -> dict[str, Any]:
    """What a zip link asks for; ``Forbidden`` when it is not ours or has expired."""
    try:
        wanted: dict[str, Any] = _signer(settings).loads(token, max_age=LINK_LIFETIME_S)
    except SignatureExpired:
        raise Forbidden("this download link has expired; ask for it again in the gallery") from None
    except BadSignature:
        raise Forbidden("this download link is not valid; ask for it in the gallery") from None
    return wanted
