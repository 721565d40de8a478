"""The provider registry: a plain dict from provider name to its entry.

Built-in providers register exactly like any other would; nothing dispatches on names.
"""

from __future__ import annotations

from ..catalog import Catalog
from ..config import Settings
from . import local, minimax, openai, replicate
from .base import ProviderEntry

PROVIDERS: dict[str, ProviderEntry] = {
    entry.name: entry for entry in (local.ENTRY, openai.ENTRY, minimax.ENTRY, replicate.ENTRY)
}


def full_catalog(settings: Settings) -> Catalog:
    """Every model of every registered provider, configured here or not."""
    return Catalog(m for entry in PROVIDERS.values() for m in entry.models(settings))


def configured_catalog(settings: Settings) -> Catalog:
    """Only the models whose provider has what it needs (keys, endpoints) in ``settings``."""
    return Catalog(m for entry in PROVIDERS.values() if entry.is_configured(settings) for m in entry.models(settings))
