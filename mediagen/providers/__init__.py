"""The provider registry: a plain dict from provider name to its entry.

Built-in providers register exactly like any other would; nothing dispatches on names. Adding a
provider is its own module (its settings, models and client) and one line here.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..catalog import Catalog
from . import local, minimax, openai, replicate
from .base import ProviderEntry
from .settings import ProviderSettings

PROVIDERS: dict[str, ProviderEntry] = {
    entry.name: entry for entry in (local.ENTRY, openai.ENTRY, minimax.ENTRY, replicate.ENTRY)
}


def read_provider_settings() -> dict[str, ProviderSettings]:
    """Every registered provider's own settings, read from its variables now."""
    return {name: entry.settings() for name, entry in PROVIDERS.items()}


def full_catalog(provider_settings: Mapping[str, ProviderSettings]) -> Catalog:
    """Every model of every registered provider, configured here or not."""
    return Catalog(m for name, entry in PROVIDERS.items() for m in entry.models(provider_settings[name]))


def configured_catalog(provider_settings: Mapping[str, ProviderSettings]) -> Catalog:
    """Only the models whose provider has what it needs (keys, endpoints)."""
    return Catalog(
        m
        for name, entry in PROVIDERS.items()
        if provider_settings[name].configured
        for m in entry.models(provider_settings[name])
    )
