"""Start-up checks: the studio refuses to serve where anybody could reach it as an admin, and a
half-written sign-in section is named at start-up rather than found out by the first user."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping


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
