"""Access to the running services and the current user, for pages."""

from __future__ import annotations

from mediagen import runtime
from mediagen.studio import Studio
from mediagen.web import LOCAL_OWNER


def studio() -> Studio:
    return runtime.studio()


def current_owner() -> str:
    """Who is using the studio; a single local user until sign-in is configured."""
    return LOCAL_OWNER
