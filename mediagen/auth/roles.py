"""Who may do what: roles from settings, what each role may do, and ownership of jobs.

Roles come from ``MEDIAGEN_ROLES``, e-mail addresses or domains mapped to a role; an address
wins over its domain. Without sign-in configured the studio is a single local admin. What a role
may do is a set of capabilities; the pages (``ui.navigation``) and the HTTP API each ask for one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from ..errors import Forbidden


class Role(StrEnum):
    CREATOR = "creator"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class Capability(StrEnum):
    GENERATE = "generate"  # make images and videos; cancel, retry and delete one's own jobs
    BROWSE = "browse"  # the gallery: view, star, collect, download
    ADMINISTER = "administer"  # task history, system, and everyone's jobs


CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.CREATOR: frozenset({Capability.GENERATE, Capability.BROWSE}),
    Role.REVIEWER: frozenset({Capability.BROWSE}),
    Role.ADMIN: frozenset(Capability),
}


@dataclass(frozen=True)
class User:
    email: str
    name: str
    role: Role | None  # None: signed in, but not given a role
    local: bool = False  # the single user of a studio without sign-in

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def may(self, capability: Capability) -> bool:
        return self.role is not None and capability in CAPABILITIES[self.role]

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


def require_change(user: User, owner: str, what: str) -> None:
    if not user.may_change(owner):
        whose = "your own jobs" if user.role is Role.CREATOR else "nothing"
        raise Forbidden(f"you can't {what} this job: it belongs to {owner}, and as {user.role} you may change {whose}")
