"""API keys: made for a user, shown once, kept only as a hash, revoked by id.

A key reads ``mg_<id>_<secret>``: the id finds the row without a scan and is safe to show in
lists and logs; the secret is 32 random bytes, so a plain SHA-256 of it is as good as a slow hash
(there is nothing to guess) and keeps every request's check cheap.

A key acts as its user, with the role ``MEDIAGEN_ROLES`` gives that user *now*: taking the role
away disables the key at its next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from ..db.tables import ApiKey, utcnow
from ..errors import Forbidden, InvalidInput, NotFound, Unauthorized
from ..studio import Studio
from .roles import Role, User, role_for

PREFIX = "mg_"
# A key checked lately is trusted for this long without a database read, so a poll loop costs no
# key lookup; revoking a key therefore takes effect within this time on every app server.
SEEN_FOR_S = 5.0
_seen: dict[str, tuple[float, KeyInfo]] = {}
_seen_lock = threading.Lock()
# Writing last use on every request would make each read a write; once a minute says enough.
LAST_USE_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True)
class KeyInfo:
    """A key as lists show it: never its secret."""

    id: str
    user: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        return cls(row.id, row.user, row.name, row.created_at, row.last_used_at, row.revoked_at)

    def data(self) -> dict[str, object]:
        stamp = lambda value: value.isoformat() if value else None  # noqa: E731
        return {
            "id": self.id,
            "user": self.user,
            "name": self.name,
            "created_at": stamp(self.created_at),
            "last_used_at": stamp(self.last_used_at),
            "revoked_at": stamp(self.revoked_at),
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _valid_user(user: str) -> str:
    text = (user or "").strip().lower()
    if not text or " " in text or len(text) > 255:
        raise InvalidInput("user", "must be the e-mail address the key acts as", "an address such as ana@example.com")
    return text


def create_key(studio: Studio, user: str, name: str = "") -> tuple[KeyInfo, str]:
    """A new key for ``user``: its details and the whole key, which is never shown again."""
    label = (name or "").strip()
    if len(label) > 120:
        raise InvalidInput("name", f"is {len(label)} characters long", "at most 120")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    row = ApiKey(id=key_id, user=_valid_user(user), name=label, secret_sha256=_digest(secret), created_at=utcnow())
    with studio.db.write() as session:
        session.add(row)
        session.flush()
        info = KeyInfo.of(row)
    return info, f"{PREFIX}{key_id}_{secret}"


def list_keys(studio: Studio, *, user: str | None = None) -> list[KeyInfo]:
    query = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id)
    if user:
        query = query.where(ApiKey.user == _valid_user(user))
    with studio.db.read() as session:
        return [KeyInfo.of(row) for row in session.scalars(query)]


def revoke_key(studio: Studio, key_id: str) -> KeyInfo:
    """Revoke a key; revoking one already revoked keeps its first revocation time."""
    with studio.db.write() as session:
        row = session.get(ApiKey, key_id.strip().removeprefix(PREFIX))
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}")
        row.revoked_at = row.revoked_at or utcnow()
        session.flush()
        info = KeyInfo.of(row)
    forget_seen()
    return info


def recently_seen(presented: str) -> bool:
    with _seen_lock:
        hit = _seen.get(_digest(presented))
    return hit is not None and time.monotonic() - hit[0] < SEEN_FOR_S


def authenticate(studio: Studio, presented: str) -> KeyInfo:
    """The live key ``presented`` is, with its last use recorded; ``Unauthorized`` otherwise."""
    fingerprint = _digest(presented)
    with _seen_lock:
        hit = _seen.get(fingerprint)
    if hit is not None and time.monotonic() - hit[0] < SEEN_FOR_S:
        return hit[1]
    info = _check(studio, presented)
    with _seen_lock:
        if len(_seen) > 10_000:  # many distinct keys: start over rather than grow without bound
            _seen.clear()
        _seen[fingerprint] = (time.monotonic(), info)
    return info


def forget_seen() -> None:
    """Drop the cache (tests, and a revoke in this process takes effect at once)."""
    with _seen_lock:
        _seen.clear()


def _check(studio: Studio, presented: str) -> KeyInfo:
    key_id, _, secret = presented.strip().removeprefix(PREFIX).partition("_")
    unknown = Unauthorized("this API key is not valid; make one with `python -m mediagen keys create --user EMAIL`")
    if not presented.startswith(PREFIX) or not key_id or not secret:
        raise unknown
    with studio.db.read() as session:
        row = session.get(ApiKey, key_id)
        info = KeyInfo.of(row) if row is not None else None
        digest = row.secret_sha256 if row is not None else _digest("")
    if not hmac.compare_digest(digest, _digest(secret)) or info is None:
        raise unknown
    if info.revoked_at is not None:
        raise Unauthorized(f"API key {info.id} was revoked; ask an admin for a new one")
    now = utcnow()
    if info.last_used_at is None or now - info.last_used_at >= LAST_USE_PRECISION:
        with studio.db.write() as session:
            session.execute(update(ApiKey).where(ApiKey.id == info.id).values(last_used_at=now))
    return info


def acting_user(studio: Studio, key: KeyInfo, *, sign_in: bool) -> User:
    """Whom a key acts as at this request: its user, with the role ``MEDIAGEN_ROLES`` gives them
    now. Without sign-in the studio has one user, so a key whose user has no role is an admin."""
    role = role_for(key.user, studio.settings.roles)
    if role is None and sign_in:
        raise Forbidden(
            f"API key {key.id} acts as {key.user}, who has no role in MEDIAGEN_ROLES; ask an admin for access"
        )
    return User(email=key.user, name=key.name or key.user, role=role or Role.ADMIN)
