"""Stars: a user marks an asset to find it again (and so retention keeps it)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from ..db.tables import Asset, Favourite
from ..errors import NotFound
from ..studio import Studio


def toggle_star(studio: Studio, owner: str, asset_id: int) -> bool:
    """Star the asset for this user, or unstar it; returns whether it is starred now."""
    with studio.db.write() as session:
        if session.get(Asset, asset_id) is None:
            raise NotFound(f"no asset with id {asset_id}")
        star = session.get(Favourite, (owner, asset_id))
        if star is not None:
            session.delete(star)
            return False
        session.add(Favourite(owner=owner, asset_id=asset_id))
        return True


def starred(studio: Studio, owner: str, asset_ids: Iterable[int]) -> set[int]:
    ids = list(asset_ids)
    with studio.db.read() as session:
        query = select(Favourite.asset_id).where(Favourite.owner == owner, Favourite.asset_id.in_(ids))
        return set(session.scalars(query))
