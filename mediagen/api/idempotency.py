"""``Idempotency-Key`` on creating requests: the same key from the same user within a day gets
the first answer again and creates nothing.

The key is claimed with a row before the work starts, so two requests racing with one key make
one job: the second is told the first is still being answered (409) and may try again. The
request is fingerprinted by its parsed fields (not its raw bytes: a multipart body's boundary
differs on every send), so reusing a key for a different request is refused rather than replayed.
A request refused before anything was created (4xx from validation) frees its key for a fixed
retry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..auth.roles import User
from ..db.tables import IdempotentRequest, utcnow
from ..errors import Conflict, InvalidInput, MediagenError
from ..studio import Studio

KEPT_FOR = timedelta(hours=24)
# A first answer still missing after this long belongs to a process that died mid-request.
ABANDONED_AFTER = timedelta(minutes=15)
HEADER = "Idempotency-Key"


def _fingerprint(request: Request, fields: dict[str, Any]) -> str:
    text = json.dumps([request.method, request.url.path, fields], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _claim(studio: Studio, user: str, key: str, fingerprint: str) -> IdempotentRequest | None:
    """Claim ``key`` for this request (None), or return the earlier request that holds it."""
    now = utcnow()
    for _ in range(2):
        try:
            with studio.db.write() as session:
                session.add(IdempotentRequest(user=user, key=key, fingerprint=fingerprint, created_at=now))
            return None
        except IntegrityError:
            pass
        with studio.db.write() as session:
            held = session.get(IdempotentRequest, (user, key))
            if held is None:
                continue
            stale = held.created_at < now - KEPT_FOR
            abandoned = held.status_code is None and held.created_at < now - ABANDONED_AFTER
            if not (stale or abandoned):
                session.expunge(held)
                return held
            session.delete(held)
    raise Conflict(f"{HEADER} {key!r} is being claimed by another request; try again")


def _record(studio: Studio, user: str, key: str, response: Response) -> None:
    with studio.db.write() as session:
        held = session.get(IdempotentRequest, (user, key))
        if held is not None:
            held.status_code = response.status_code
            held.body = bytes(response.body).decode()


def _release(studio: Studio, user: str, key: str) -> None:
    with studio.db.write() as session:
        session.execute(delete(IdempotentRequest).where(IdempotentRequest.user == user, IdempotentRequest.key == key))


async def once(
    studio: Studio, request: Request, user: User, fields: dict[str, Any], create: Callable[[], Awaitable[Response]]
) -> Response:
    """``create()``'s answer, or, for a repeated ``Idempotency-Key``, the first one's."""
    key = request.headers.get(HEADER, "").strip()
    if not key:
        return await create()
    if len(key) > 255:
        raise InvalidInput(HEADER, f"is {len(key)} characters long", "at most 255")
    fingerprint = _fingerprint(request, fields)
    held = await run_in_threadpool(_claim, studio, user.email, key, fingerprint)
    if held is not None:
        if held.fingerprint != fingerprint:
            raise Conflict(f"{HEADER} {key!r} was already used for a different request; use a new key")
        if held.status_code is None:
            raise Conflict(f"the first request with {HEADER} {key!r} is still being answered; try again shortly")
        return Response(
            held.body or "",
            status_code=held.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        response = await create()
    except MediagenError as exc:
        if exc.http_status < 500:
            await run_in_threadpool(_release, studio, user.email, key)
        raise
    await run_in_threadpool(_record, studio, user.email, key, response)
    return response
