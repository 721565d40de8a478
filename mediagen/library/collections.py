"""Collections: named groups of assets, each owned by the user who made it."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db.tables import Asset, Collection, CollectionAsset
from ..errors import InvalidInput, NotFound
from ..studio import Studio

MAX_NAME_CHARS = 120


def _valid_name(name: str) -> str:
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise InvalidInput("collection name", "must not be empty", f"1–{MAX_NAME_CHARS} characters")
    if len(cleaned) > MAX_NAME_CHARS:
        raise InvalidInput("collection name", f"is {len(cleaned)} characters long", f"at most {MAX_NAME_CHARS}")
    return cleaned


def owned_collection(session: Session, owner: str, collection_id: int) -> Collection:
    found = session.get(Collection, collection_id)
    if found is None or found.owner != owner:
        raise NotFound(f"no collection with id {collection_id}")
    return found


def create_collection(studio: Studio, owner: str, name: str) -> Collection:
    cleaned = _valid_name(name)
    try:
        with studio.db.write() as session:
            collection = Collection(owner=owner, name=cleaned)
            session.add(collection)
            session.flush()
            return collection
    except IntegrityError:
        raise InvalidInput("collection name", f"you already have a collection called {cleaned!r}") from None


def rename_collection(studio: Studio, owner: str, collection_id: int, name: str) -> None:
    cleaned = _valid_name(name)
    try:
        with studio.db.write() as session:
            owned_collection(session, owner, collection_id).name = cleaned
    except IntegrityError:
        raise InvalidInput("collection name", f"you already have a collection called {cleaned!r}") from None


def delete_collection(studio: Studio, owner: str, collection_id: int) -> None:
    """The collection goes; its assets stay where they are."""
    with studio.db.write() as session:
        session.delete(owned_collection(session, owner, collection_id))


def add_to_collection(studio: Studio, owner: str, collection_id: int, asset_ids: Iterable[int]) -> int:
    """Adds the assets not in it yet; returns how many were added."""
    ids = set(asset_ids)
    with studio.db.write() as session:
        owned_collection(session, owner, collection_id)
        existing = set(session.scalars(select(Asset.id).where(Asset.id.in_(ids))))
        if missing := ids - existing:
            raise NotFound(f"no asset with id {min(missing)}")
        present = set(
            session.scalars(
                select(CollectionAsset.asset_id).where(
                    CollectionAsset.collection_id == collection_id, CollectionAsset.asset_id.in_(ids)
                )
            )
        )
        session.add_all(CollectionAsset(collection_id=collection_id, asset_id=i) for i in sorted(ids - present))
        return len(ids - present)


def remove_from_collection(studio: Studio, owner: str, collection_id: int, asset_ids: Iterable[int]) -> None:
    with studio.db.write() as session:
        owned_collection(session, owner, collection_id)
        session.execute(
            delete(CollectionAsset).where(
                CollectionAsset.collection_id == collection_id, CollectionAsset.asset_id.in_(list(asset_ids))
            )
        )


def collections_holding(studio: Studio, owner: str, asset_id: int) -> list[int]:
    with studio.db.read() as session:
        query = (
            select(CollectionAsset.collection_id)
            .join(Collection, Collection.id == CollectionAsset.collection_id)
            .where(Collection.owner == owner, CollectionAsset.asset_id == asset_id)
        )
        return list(session.scalars(query))


def collections_of(studio: Studio, owner: str) -> list[tuple[int, str]]:
    """This user's collections as (id, name), by name: the gallery's collection filter."""
    with studio.db.read() as session:
        rows = session.execute(select(Collection.id, Collection.name).where(Collection.owner == owner))
        return sorted(((row.id, row.name) for row in rows), key=lambda pair: pair[1].casefold())
