"""The README covers every setting, the core's and each provider's own, so nobody has to read
the code to configure the studio."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import AliasChoices

from mediagen.config import Settings
from mediagen.providers import PROVIDERS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_documented_with_its_reason() -> None:
    missing = []
    for name, field in Settings.model_fields.items():
        names = [f"MEDIAGEN_{name.upper()}"]
        if isinstance(field.validation_alias, AliasChoices):
            names += [str(choice) for choice in field.validation_alias.choices]
        assert field.description, f"{name} has no one-line reason in config.py"
        if not any(f"`{env}`" in README for env in names):
            missing.append(names[0])
    assert missing == [], f"not in the README: {missing}"


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_every_provider_setting_is_documented_under_its_own_name(provider: str) -> None:
    settings = PROVIDERS[provider].settings
    for field_name, names in settings.variables().items():
        assert settings.model_fields[field_name].description, f"{provider}.{field_name} has no reason"
        assert f"`{names[0]}`" in README, f"{names[0]} ({provider}) is not in the README"
