"""The one signing mechanism for the studio's links (zip downloads, local media URLs): itsdangerous
with one key per studio, each kind of link under its own salt so a signature made for one kind
never passes as another.

The key is ``MEDIAGEN_LINK_SECRET``, or else a random key kept in the data dir. Kept, not made
per process: the CLI and separate workers sign media URLs that the app server checks, and links
outlive a restart. Whoever can read the data dir can read the media itself, so the key file
guards nothing more than what sits beside it.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import tempfile
from functools import cache
from pathlib import Path

from itsdangerous import URLSafeTimedSerializer

from .config import Settings

KEY_FILE = "link-secret"


def serializer(settings: Settings, purpose: str) -> URLSafeTimedSerializer:
    """Signs and reads payloads (with their signing time) for links of one ``purpose``."""
    return URLSafeTimedSerializer(_key(settings), salt=f"mediagen-{purpose}")


def signature(settings: Settings, purpose: str, value: str) -> str:
    """A URL-safe signature of ``value`` for links of one ``purpose``."""
    signer = serializer(settings, purpose)
    return signer.make_signer(signer.salt).get_signature(value).decode("ascii")


def signed_by_us(settings: Settings, purpose: str, value: str, presented: str) -> bool:
    return hmac.compare_digest(signature(settings, purpose, value), presented)


def _key(settings: Settings) -> str:
    if settings.link_secret:
        return settings.link_secret.get_secret_value()
    return _kept_key(settings.data_dir.resolve())


@cache
def _kept_key(data_dir: Path) -> str:
    """The data dir's key, made on first use. Written whole under a temp name and linked into
    place, so two processes starting at once agree on one key and neither reads half of it."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=data_dir, prefix=f".{KEY_FILE}-")  # mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32))
            with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
                os.link(temp, path)
        finally:
            Path(temp).unlink(missing_ok=True)
    return path.read_text().strip()
