"""The dashboard's pages, what each asks of its user's role, and the refusal a typed URL of a page
that is not theirs gets. (Which role may do what is the core's: ``auth.roles``.)"""

from __future__ import annotations

from enum import StrEnum

from mediagen.auth.roles import Capability, User
from mediagen.errors import Forbidden


class StudioPage(StrEnum):
    IMAGE_STUDIO = "image_studio"
    VIDEO_STUDIO = "video_studio"
    COMPARE = "compare"
    GALLERY = "gallery"
    TASK_HISTORY = "task_history"
    SYSTEM = "system"


PAGE_TITLES = {
    StudioPage.IMAGE_STUDIO: "Image studio",
    StudioPage.VIDEO_STUDIO: "Video studio",
    StudioPage.COMPARE: "Compare",
    StudioPage.GALLERY: "Gallery",
    StudioPage.TASK_HISTORY: "Task history",
    StudioPage.SYSTEM: "System",
}
NEEDS = {
    StudioPage.IMAGE_STUDIO: Capability.GENERATE,
    StudioPage.VIDEO_STUDIO: Capability.GENERATE,
    StudioPage.COMPARE: Capability.GENERATE,
    StudioPage.GALLERY: Capability.BROWSE,
    StudioPage.TASK_HISTORY: Capability.ADMINISTER,
    StudioPage.SYSTEM: Capability.ADMINISTER,
}


def may_open(user: User, page: StudioPage) -> bool:
    return user.may(NEEDS[page])


def require_page(user: User, page: StudioPage) -> None:
    if not may_open(user, page):
        allowed = [PAGE_TITLES[p] for p in StudioPage if may_open(user, p)]
        where = ", ".join(allowed) if allowed else "no page yet"
        raise Forbidden(f"{PAGE_TITLES[page]} is not open to you ({user.role or 'no role'}); you can use: {where}.")
