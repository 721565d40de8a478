"""Our OpenAI request bodies conform to OpenAI's own OpenAPI description (shared/specs)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mediagen.catalog import Choice, IntRange, Size, validate_params
from mediagen.errors import InvalidInput
from mediagen.providers import openai

from ..support import openai_spec


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    try:
        return openai_spec.components()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


def _validator(components: dict[str, Any], schema: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": components})


def _every_option(spec) -> list[dict[str, Any]]:
    """Each allowed value of each option at least once (others at their defaults)."""
    variants = [spec.defaults()]
    for param in spec.params:
        values = param.choices if isinstance(param, Choice | Size) else ()
        if isinstance(param, IntRange):
            values = (param.low, param.high)
        variants += [spec.defaults() | {param.name: value} for value in values]
    return variants


@pytest.mark.parametrize("spec", [m for m in openai.MODELS if m.kind == "image"], ids=lambda m: m.name)
def test_image_requests_match_create_image_request(components, spec) -> None:
    validator = _validator(components, "CreateImageRequest")
    checked = 0
    for params in _every_option(spec):
        try:
            params = validate_params(spec, params)
        except InvalidInput:
            continue  # combinations our own rules refuse are never sent
        body = openai.image_request(spec, "a sea otter", params)
        errors = [e.message for e in validator.iter_errors(body)]
        assert errors == [], (body, errors)
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("spec", [m for m in openai.MODELS if m.kind == "video"], ids=lambda m: m.name)
def test_video_forms_match_create_video_multipart_body(components, spec) -> None:
    validator = _validator(components, "CreateVideoMultipartBody")
    durations = spec.param("duration").choices
    sizes = spec.param("size").choices
    for duration, size in itertools.product(durations, sizes):
        params = validate_params(spec, {"duration": duration, "size": size})
        form = {name: value for name, (_, value) in openai.video_form(spec, "waves", params).items()}
        errors = [e.message for e in validator.iter_errors(form)]
        assert errors == [], (form, errors)


def test_the_schema_check_does_catch_a_bad_body(components) -> None:
    validator = _validator(components, "CreateImageRequest")
    assert list(validator.iter_errors({"prompt": "x", "n": 11, "quality": "ultra"}))
    video = _validator(components, "CreateVideoMultipartBody")
    assert list(video.iter_errors({"prompt": "x", "seconds": "5"}))
