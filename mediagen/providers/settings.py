"""A provider's own settings, declared by the provider and read from its own variables.

Each provider module declares a subclass with its prefix (``env_prefix="OPENAI_"``) and its fields;
every field is read from ``{PREFIX}{FIELD}`` (the name the provider's own SDK reads, so existing
shells work) or ``MEDIAGEN_{PREFIX}{FIELD}``. The core settings know nothing of providers: adding
one touches its own module and one line of the registry.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

OURS = "MEDIAGEN_"


class ProviderSettings(BaseSettings):
    """Settings of a provider that needs none (the offline one) and the base of every other's."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        prefix = cls.prefix()
        if prefix.startswith(OURS):
            return init_settings, env_settings, dotenv_settings
        ours = EnvSettingsSource(settings_cls, env_prefix=OURS + prefix)
        return init_settings, env_settings, ours, dotenv_settings

    @classmethod
    def prefix(cls) -> str:
        return str(cls.model_config.get("env_prefix") or "")

    @classmethod
    def variables(cls) -> dict[str, list[str]]:
        """Each field's environment variables, the provider's own name first (for docs and messages)."""
        names: dict[str, list[str]] = {}
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names[field_name] = [str(choice) for choice in alias.choices]
            else:
                own = f"{cls.prefix()}{field_name}".upper()
                names[field_name] = [own] if own.startswith(OURS) else [own, OURS + own]
        return names

    @property
    def configured(self) -> bool:
        """Whether the provider has what it needs to be offered."""
        return True


class RemoteSettings(ProviderSettings):
    """A provider reached over HTTP: the key that switches it on, and the base URL its API paths
    are appended to (configurable, so OpenAI-compatible gateways and regional hosts work)."""

    DEFAULT_BASE_URL: ClassVar[str] = ""

    api_key: SecretStr | None = Field(None, description="Switches the provider on; never logged or stored.")
    base_url: str = Field("", validate_default=True, description="The API's base URL; paths are appended to it.")

    @field_validator("base_url", mode="before")
    @classmethod
    def _http_base(cls, value: Any) -> str:
        text = str(value or cls.DEFAULT_BASE_URL)
        if not text.startswith(("http://", "https://")):
            raise ValueError("must be an http(s):// URL")
        return text.rstrip("/")

    @property
    def configured(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())

    @classmethod
    def key_variable(cls) -> str:
        """The variable to set, as error messages name it (``OPENAI_API_KEY was rejected``)."""
        return cls.variables()["api_key"][0]
