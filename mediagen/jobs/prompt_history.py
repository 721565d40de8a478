"""A user's recent prompts, to reuse in the studios: read from the jobs table, newest first,
each prompt once.

The newest jobs of one owner are read down the ``ix_jobs_owner_created`` index (owner, created_at,
id) and made distinct here, a batch at a time, rather than with a GROUP BY over all of the owner's
jobs: a user who presses Generate many times on one prompt still gets their other prompts, and the
database never sorts more than a batch.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select

from ..db.tables import Job
from ..errors import InvalidInput
from ..studio import Studio

RECENT_PROMPTS = 20
MAX_RECENT_PROMPTS = 100
# Jobs read per round trip; at most this many rounds, so a history of thousands of runs of the
# same few prompts still answers quickly (with the prompts found so far).
BATCH = 200
MAX_ROUNDS = 10


def recent_prompts(studio: Studio, owner: str, *, limit: int = RECENT_PROMPTS) -> list[str]:
    """The owner's most recently used distinct prompts, newest first, at most ``limit``."""
    if not 1 <= limit <= MAX_RECENT_PROMPTS:
        raise InvalidInput("limit", f"{limit} is out of range", f"1–{MAX_RECENT_PROMPTS}")
    found: dict[str, None] = {}  # insertion-ordered: newest first
    after: tuple[datetime, str] | None = None
    with studio.db.read() as session:
        for _ in range(MAX_ROUNDS):
            query = select(Job.prompt, Job.created_at, Job.id).where(Job.owner == owner)
            if after is not None:
                created, job_id = after
                query = query.where(or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id)))
            rows = session.execute(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(BATCH)).all()
            for prompt, _created, _id in rows:
                found.setdefault(prompt, None)
                if len(found) == limit:
                    return list(found)
            if len(rows) < BATCH:
                break
            after = (rows[-1].created_at, rows[-1].id)
    return list(found)
