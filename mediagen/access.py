"""Who may do what: roles from settings, and the checks every page and action makes.

Roles come from ``MEDIAGEN_ROLES``, e-mail addresses or domains mapped to a role; an address
wins over its domain. Without sign-in configured the studio is a single local admin.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .errors import MediagenError


class Role(StrEnum):
    CREATOR = "creator"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class Page(StrEnum):
    IMAGE_STUDIO = "image_studio"
    VIDEO_STUDIO = "video_studio"
    GALLERY = "gallery"
    TASK_HISTORY = "task_history"
    SYSTEM = "system"


PAGES_FOR: dict[Role, frozenset[Page]] = {
    Role.CREATOR: frozenset({Page.IMAGE_STUDIO, Page.VIDEO_STUDIO, Page.GALLERY}),
    Role.REVIEWER: frozenset({Page.GALLERY}),
    Role.ADMIN: frozenset(Page),
}
PAGE_TITLES = {
    Page.IMAGE_STUDIO: "Image studio",
    Page.VIDEO_STUDIO: "Video studio",
    Page.GALLERY: "Gallery",
    Page.TASK_HISTORY: "Task history",
    Page.SYSTEM: "System",
}


class Forbidden(MediagenError):
    """The signed-in user's role or ownership does not allow this."""


@dataclass(frozen=True)
class User:
    email: str
    name: str
    role: Role | None  # None: signed in, but not given a role
    local: bool = False  # the single user of a studio without sign-in

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def may_open(self, page: Page) -> bool:
        return self.role is not None and page in PAGES_FOR[self.role]

    def may_change(self, owner: str) -> bool:
        """Cancel, retry or delete a job (or star and collect as its owner): its owner or an admin."""
        return self.is_admin or (self.role is Role.CREATOR and owner == self.email)


LOCAL_ADMIN = User(email="local", name="Local user", role=Role.ADMIN, local=True)


def role_for(email: str, roles: Mapping[str, str]) -> Role | None:
    """The role given to this address, else to its domain (``example.com`` or ``@example.com``)."""
    address = email.strip().lower()
    table = {key.strip().lower().lstrip("@"): value for key, value in roles.items()}
    if address in table:
        return Role(table[address])
    domain = address.rpartition("@")[2]
    return Role(table[domain]) if domain and domain in table else None


def require_page(user: User, page: Page) -> None:
    if not user.may_open(page):
        raise Forbidden(_refusal(user, PAGE_TITLES[page]))


def require_change(user: User, owner: str, what: str) -> None:
    if not user.may_change(owner):
        whose = "your own jobs" if user.role is Role.CREATOR else "nothing"
        raise Forbidden(f"you can't {what} this job: it belongs to {owner}, and as {user.role} you may change {whose}")


def _refusal(user: User, title: str) -> str:
    allowed = [PAGE_TITLES[p] for p in Page if user.may_open(p)]
    where = ", ".join(allowed) if allowed else "no page yet"
    return f"{title} is not open to you ({user.role or 'no role'}); you can use: {where}."


def exposure_refusal(address: str | None, signed_in: bool, allowed: bool) -> str | None:
    """Why the studio must not start: serving beyond this machine with nobody signing in makes
    everyone who reaches it an admin. None when starting is fine."""
    if signed_in or allowed or _loopback(address):
        return None
    where = address or "every network interface"
    return (
        f"refusing to serve on {where} without sign-in: anyone who reaches it would be an admin. "
        "Configure [auth] in .streamlit/secrets.toml (README: Sign-in and roles), serve on 127.0.0.1, "
        "or set MEDIAGEN_ALLOW_UNAUTHENTICATED=1 to accept that."
    )


def _loopback(address: str | None) -> bool:
    if not address:
        return False  # Streamlit's default: all interfaces
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")


def auth_problems(section: Mapping[str, object]) -> list[str]:
    """What an ``[auth]`` section lacks for sign-in to work; empty when nothing. Caught at start-up,
    so a half-written secrets file is not found out by the first person who clicks Sign in."""
    problems = [f"[auth] needs {key}" for key in ("redirect_uri", "cookie_secret") if not section.get(key)]
    redirect = str(section.get("redirect_uri") or "")
    if redirect and not redirect.rstrip("/").endswith("/oauth2callback"):
        problems.append("[auth] redirect_uri must end in /oauth2callback")
    providers = {name: value for name, value in section.items() if isinstance(value, Mapping)}
    if not providers:
        problems += [f"[auth] needs {key}" for key in PROVIDER_KEYS if not section.get(key)]
    for name, provider in providers.items():
        problems += [f"[auth.{name}] needs {key}" for key in PROVIDER_KEYS if not provider.get(key)]
    return problems
