"""Providers own their settings: each reads its own variables (its SDK's name, or with MEDIAGEN_),
and the core settings know none of them."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from mediagen.config import Settings
from mediagen.providers import PROVIDERS, configured_catalog, read_provider_settings
from mediagen.providers.openai import OpenAISettings
from mediagen.providers.replicate import ReplicateSettings
from mediagen.providers.settings import RemoteSettings


class EchoSettings(RemoteSettings, env_prefix="ECHO_"):
    """A provider added by someone else, declared the same way as the built-in ones."""

    DEFAULT_BASE_URL = "https://echo.example.com/api/"


@pytest.fixture(autouse=True)
def _no_provider_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for entry in PROVIDERS.values():
        for names in entry.settings.variables().values():
            for name in names:
                monkeypatch.delenv(name, raising=False)


def test_a_provider_reads_its_own_variables_in_either_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not EchoSettings().configured
    assert EchoSettings().base_url == "https://echo.example.com/api"  # the default, without its slash
    monkeypatch.setenv("MEDIAGEN_ECHO_API_KEY", "k-ours")
    assert EchoSettings().configured and EchoSettings().api_key.get_secret_value() == "k-ours"
    monkeypatch.setenv("ECHO_API_KEY", "k-sdk")  # the provider's own name wins
    assert EchoSettings().api_key.get_secret_value() == "k-sdk"
    assert EchoSettings.key_variable() == "ECHO_API_KEY"
    monkeypatch.setenv("ECHO_BASE_URL", "ftp://echo.example.com")
    with pytest.raises(ValidationError, match="must be an http"):
        EchoSettings()


def test_replicate_keeps_its_sdks_token_name_and_model_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8-x")
    monkeypatch.setenv("MEDIAGEN_REPLICATE_VIDEO_MODELS", '["someone/clip"]')
    own = ReplicateSettings()
    assert own.configured and own.video_models == ["someone/clip"]
    assert ReplicateSettings.key_variable() == "REPLICATE_API_TOKEN"
    monkeypatch.setenv("REPLICATE_IMAGE_MODELS", '["not-owner-slash-name"]')
    with pytest.raises(ValidationError, match="is not owner/name"):
        ReplicateSettings()


def test_a_key_switches_a_provider_on_and_the_core_knows_no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {m.provider for m in configured_catalog(read_provider_settings()).models()} == {"local"}
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert "sora-2" in configured_catalog(read_provider_settings())
    assert OpenAISettings().base_url == "https://api.openai.com/v1"
    for field in Settings.model_fields:
        assert not field.startswith(tuple(PROVIDERS)), f"core setting {field} belongs to a provider"


def test_replicate_image_inputs_are_declared_per_model_in_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    declared = {
        "bfl/kontext": {"image": {"field": "input_image", "required": True}},
        "a/fill": {"image": "image", "mask": "mask"},
        "minimax/video-01": {"image": "start_image"},
    }
    monkeypatch.setenv("REPLICATE_IMAGE_INPUTS", json.dumps(declared))
    own = ReplicateSettings(
        image_models=["bfl/kontext", "a/fill"], video_models=["minimax/video-01", "minimax/hailuo-02"]
    )
    models = {m.name: m for m in PROVIDERS["replicate"].models(own)}
    assert models["bfl/kontext"].needs_image and models["bfl/kontext"].image_input("image").field == "input_image"
    mask = models["a/fill"].image_input("mask")
    assert mask is not None and mask.field == "mask" and mask.same_size_as_image and not models["a/fill"].needs_image
    assert (
        models["minimax/video-01"].image_input("image").field == "start_image"
    )  # a declaration replaces the known one
    known = models["minimax/hailuo-02"].image_input("image")
    assert known is not None and known.field == "first_frame_image" and known.max_aspect == 2.5  # MiniMax's limits


@pytest.mark.parametrize(
    ("declared", "problem"),
    [('{"flux": {"image": "image"}}', "is not owner/name"), ('{"a/b": {"face": "image"}}', "'image' or 'mask'")],
)
def test_replicate_image_inputs_that_make_no_sense_are_refused(monkeypatch, declared, problem) -> None:
    monkeypatch.setenv("REPLICATE_IMAGE_INPUTS", declared)
    with pytest.raises(ValidationError, match=problem):
        ReplicateSettings()
