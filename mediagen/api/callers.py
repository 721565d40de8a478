"""Who is calling: an API key's user with the role they have now, or, in local mode (no sign-in,
a call from this machine), the studio's single local admin; and what they may see and change."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from .. import server
from ..auth import keys
from ..auth.keys import acting_user, authenticate
from ..auth.roles import LOCAL_ADMIN, Capability, Role, User, require_change
from ..db.tables import Job
from ..errors import Forbidden, NotFound, Unauthorized
from ..jobs.queries import get_job
from ..studio import Studio

KEY_HELP = (
    "send an API key as `Authorization: Bearer KEY` or `X-API-Key: KEY` "
    "(make one: python -m mediagen keys create --user EMAIL)"
)


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key", "").strip() or None


def _from_this_machine(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def identify(studio: Studio, request: Request, *, sign_in: bool) -> User:
    presented = presented_key(request)
    if presented:
        return acting_user(studio, authenticate(studio, presented), sign_in=sign_in)
    if sign_in:
        raise Unauthorized(f"this studio has sign-in on, so API calls need a key: {KEY_HELP}")
    if not _from_this_machine(request):
        raise Unauthorized(f"calls from other machines need a key: {KEY_HELP}")
    return LOCAL_ADMIN


def require(user: User, capability: Capability, what: str) -> None:
    if not user.may(capability):
        raise Forbidden(f"as {user.role} you may not {what}; creators and admins may")


def owner_filter(user: User) -> str | None:
    """Whose jobs a caller sees: creators their own; reviewers and admins everyone's."""
    return user.email if user.role is Role.CREATOR else None


def visible_job(studio: Studio, user: User, job_id: str, kind: str | None = None) -> Job:
    """The job, if this caller may see it; another creator's job is as good as absent (404)."""
    try:
        job = get_job(studio, job_id, story=False)
    except NotFound:
        job = None
    mine = owner_filter(user)
    if job is None or (mine is not None and job.owner != mine) or (kind is not None and job.kind != kind):
        raise NotFound(f"no {kind or 'job'} with id {job_id!r}")
    return job


def changeable_job(studio: Studio, user: User, job_id: str, what: str, kind: str | None = None) -> Job:
    job = visible_job(studio, user, job_id, kind)
    require_change(user, job.owner, what)
    return job


SignIn = Callable[[], bool]


def current_studio() -> Studio:
    return server.studio()


async def caller(request: Request) -> User:
    """FastAPI dependency: the User this request acts as (401/403 when none). Async, so a status
    read makes one hop to the thread pool, not two: keys are checked from a short cache, and only
    a key not seen lately costs a database read (then in the pool)."""
    sign_in: SignIn = request.app.state.sign_in
    studio = current_studio()
    presented = presented_key(request)
    if presented and not keys.recently_seen(presented):
        return await run_in_threadpool(identify, studio, request, sign_in=sign_in())
    return identify(studio, request, sign_in=sign_in())
