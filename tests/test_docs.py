"""The README's settings table covers every setting, so nobody has to read config.py."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices

from mediagen.config import Settings

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
