"""Where a job came from: the job it was made from and how, recorded when it is created.

Both directions are read from the same link: a job's ``derived_from`` ("this video came from that
image") and the jobs whose ``derived_from`` is it ("that image led to these"). A comparison's
columns are a group, not a lineage: see ``jobs.compare``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Derivation(StrEnum):
    RERUN = "rerun"  # "Run again with changes": same form, prefilled, perhaps changed
    VIDEO = "video"  # a video that starts on the parent's image
    EDIT = "edit"  # the parent's image changed as a prompt says
    VARIATION = "variation"  # the parent's image redrawn with another seed


@dataclass(frozen=True)
class Lineage:
    parent: str  # the job id
    how: Derivation


@dataclass(frozen=True)
class Placement:
    """A job's place in a comparison: which group, which column (0-based)."""

    comparison_id: str
    column: int
