"""Validation refuses bad prompts and parameters with the field, the problem and what is allowed,
against the real ``local-image`` and ``local-video`` model specs."""

from __future__ import annotations

from typing import Any

import pytest

from mediagen.catalog import Catalog, ModelSpec, validate_params, validate_prompt
from mediagen.errors import InvalidInput
from mediagen.jobs.status import JobKind
from mediagen.providers.local import MODELS

IMAGE: ModelSpec = next(m for m in MODELS if m.name == "local-image")
VIDEO: ModelSpec = next(m for m in MODELS if m.name == "local-video")


def _refused(spec: ModelSpec, params: dict[str, Any]) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validate_params(spec, params)
    return caught.value


# -- prompts ------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t  \n", None])
def test_empty_prompt_is_refused(prompt: Any) -> None:
    with pytest.raises(InvalidInput, match="must not be empty") as caught:
        validate_prompt(prompt, 100)
    assert caught.value.field == "prompt"
    assert caught.value.code == "invalid_input"
    assert caught.value.allowed == "1–100 characters"


def test_over_long_prompt_is_refused_with_its_length_and_the_limit() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_prompt("a" * 4001, 4000)
    error = caught.value
    assert error.field == "prompt"
    assert "4,001 characters long" in str(error)
    assert error.allowed == "at most 4,000"


def test_prompt_at_the_limit_is_accepted_and_stripped() -> None:
    assert validate_prompt("  " + "b" * 10 + "\n", 10) == "b" * 10
    assert validate_prompt("a fox in snow", 4000) == "a fox in snow"


# -- sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["255x512", "512x255", "2049x1024", "1024x2049", "100x100", "4096x4096"])
def test_image_size_outside_256_to_2048_is_refused_naming_the_range(size: str) -> None:
    error = _refused(IMAGE, {"size": size})
    assert error.field == "size"
    assert "is not allowed for this model" in error.problem
    assert error.allowed == "width 256–2048, height 256–2048"
    assert "256–2048" in str(error)


@pytest.mark.parametrize("size", ["256x256", "2048x2048", "256x2048", "1536x1024"])
def test_image_sizes_at_the_bounds_are_accepted(size: str) -> None:
    assert validate_params(IMAGE, {"size": size})["size"] == size


@pytest.mark.parametrize("size", ["641x360", "640x361", "65x64"])
def test_odd_video_size_is_refused(size: str) -> None:
    error = _refused(VIDEO, {"size": size})
    assert error.field == "size"
    assert error.allowed is not None and "both multiples of 2" in error.allowed


@pytest.mark.parametrize("size", ["1280x1280", "1280x722", "1000x1000"])
def test_video_over_1280x720_pixels_is_refused(size: str) -> None:
    error = _refused(VIDEO, {"size": size})
    assert error.field == "size"
    assert error.allowed is not None and "at most 921,600 pixels" in error.allowed


@pytest.mark.parametrize("size", ["1280x720", "720x1280", "64x64", "160x96"])
def test_video_sizes_within_the_pixel_budget_are_accepted(size: str) -> None:
    assert validate_params(VIDEO, {"size": size})["size"] == size


@pytest.mark.parametrize("size", ["512", "512x", "x512", "big", "512*512", "-512x512"])
def test_malformed_size_is_refused(size: str) -> None:
    error = _refused(IMAGE, {"size": size})
    assert error.field == "size"
    assert "is not WIDTHxHEIGHT" in error.problem


@pytest.mark.parametrize("size", ["512X512", " 512 x 512 ", "512×512", "512x512"])
def test_size_is_normalised(size: str) -> None:
    assert validate_params(IMAGE, {"size": size})["size"] == "512x512"


# -- counts and durations ---------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 5, -1])
def test_image_count_outside_1_to_4_is_refused(n: int) -> None:
    error = _refused(IMAGE, {"n": n})
    assert error.field == "n"
    assert error.problem == f"{n} is out of range"
    assert error.allowed == "1–4"


@pytest.mark.parametrize("n", ["two", 1.5, "1.5"])
def test_non_whole_count_is_refused(n: Any) -> None:
    error = _refused(IMAGE, {"n": n})
    assert error.field == "n"
    assert "is not a whole number" in error.problem


def test_count_given_as_text_or_whole_float_is_normalised() -> None:
    assert validate_params(IMAGE, {"n": "3"})["n"] == 3
    assert validate_params(IMAGE, {"n": 2.0})["n"] == 2


@pytest.mark.parametrize("duration", [0, 11])
def test_video_duration_outside_1_to_10_is_refused(duration: int) -> None:
    error = _refused(VIDEO, {"duration": duration})
    assert error.field == "duration"
    assert error.allowed == "1–10"
    assert f"{duration} is out of range" in str(error)


@pytest.mark.parametrize("duration", [1, 10])
def test_video_duration_bounds_are_accepted(duration: int) -> None:
    assert validate_params(VIDEO, {"duration": duration})["duration"] == duration


# -- unknown options and defaults ------------------------------------------------------


def test_unknown_param_is_refused_naming_it() -> None:
    error = _refused(IMAGE, {"size": "512x512", "quality": "hd"})
    assert error.field == "quality"
    assert "is not an option of local-image" in str(error)
    assert error.allowed == "n, seed, size"


def test_image_option_is_unknown_to_video() -> None:
    error = _refused(VIDEO, {"n": 2})
    assert error.field == "n"
    assert "is not an option of local-video" in error.problem


def test_choices_such_as_formats_are_taken_in_any_case_and_kept_as_the_provider_spells_them() -> None:
    from mediagen.providers.openai import MODELS as OPENAI_MODELS

    gpt_image = next(m for m in OPENAI_MODELS if m.name == "gpt-image-1")
    chosen = validate_params(gpt_image, {"output_format": "WEBP", "quality": " High "})
    assert (chosen["output_format"], chosen["quality"]) == ("webp", "high")
    assert _refused(gpt_image, {"output_format": "BMP"}).allowed == "png, jpeg, webp"


def test_defaults_are_filled_in() -> None:
    assert validate_params(IMAGE, {}) == {"size": "1024x1024", "n": 1}
    assert validate_params(VIDEO, {}) == {"duration": 4, "size": "854x480"}
    assert validate_params(IMAGE, {"seed": 7}) == {"size": "1024x1024", "n": 1, "seed": 7}
    assert validate_params(VIDEO, {"size": "640x360", "seed": None}) == {"duration": 4, "size": "640x360"}


# -- the catalogue ----------------------------------------------------------------------


def test_catalog_finds_known_models_by_name_and_kind() -> None:
    catalog = Catalog(MODELS)
    assert catalog.get("local-image") is IMAGE
    assert catalog.get("local-video", JobKind.VIDEO) is VIDEO
    assert catalog.get("local-image", "image") is IMAGE
    assert "local-video" in catalog and "nope" not in catalog


def test_unknown_model_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as caught:
        Catalog(MODELS).get("dall-e-9")
    error = caught.value
    assert error.field == "model"
    assert error.problem == "unknown model 'dall-e-9'"
    assert error.allowed == "local-image, local-video"


def test_model_of_the_wrong_kind_is_refused() -> None:
    catalog = Catalog(MODELS)
    with pytest.raises(InvalidInput) as caught:
        catalog.get("local-image", JobKind.VIDEO)
    error = caught.value
    assert error.field == "model"
    assert error.problem == "unknown video model 'local-image'"
    assert error.allowed == "local-video"
    with pytest.raises(InvalidInput, match="unknown image model 'local-video'"):
        catalog.get("local-video", JobKind.IMAGE)


def test_a_model_registered_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        Catalog([IMAGE, IMAGE])
