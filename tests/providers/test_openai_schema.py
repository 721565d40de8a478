"""Our OpenAI request bodies conform to OpenAI's own OpenAPI description (shared/specs)."""

from __future__ import annotations

import io
import itertools
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from PIL import Image

from mediagen.catalog import Choice, IntRange, Size, validate_params
from mediagen.errors import InvalidInput
from mediagen.providers import openai
from mediagen.providers.base import Reference

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


def _png_reference(role: str, size: tuple[int, int] = (64, 64)) -> Reference:
    buffer = io.BytesIO()
    Image.new("RGBA", size, (200, 40, 40, 0 if role == "mask" else 255)).save(buffer, "PNG")
    data = buffer.getvalue()
    return Reference(role, "image/png", *size, read=lambda: data, name=f"{role}.png")


def _fields(parts) -> dict[str, str]:
    """Multipart parts as the server reads them: plain fields by value, file parts by name."""
    return {name: value if filename is None else filename for name, (filename, value, *_) in parts}


EDITORS = [m for m in openai.MODELS if m.kind == "image" and m.image_input("image")]


@pytest.mark.parametrize("spec", EDITORS, ids=lambda m: m.name)
def test_edit_forms_match_create_image_edit_request(components, spec) -> None:
    validator = _validator(components, "CreateImageEditRequest")
    references = [_png_reference("image"), _png_reference("mask")]
    checked = 0
    for params in _every_option(spec):
        try:
            params = validate_params(spec, params)
        except InvalidInput:
            continue
        parts = openai.edit_form(spec, "add a red hat", params, references)
        form = openai_spec.form_values("CreateImageEditRequest", _fields(parts))
        errors = [e.message for e in validator.iter_errors(form)]
        assert errors == [], (form, errors)
        assert form["image"] == "image.png" and form["mask"] == "mask.png"
        checked += 1
    assert checked >= 3


def test_edits_send_the_image_and_mask_as_png_files_and_only_the_options_edits_take() -> None:
    dall_e_2 = next(m for m in openai.MODELS if m.name == "dall-e-2")
    params = validate_params(dall_e_2, {"response_format": "b64_json", "n": 2})
    image, mask = _png_reference("image"), _png_reference("mask")
    parts = dict(openai.edit_form(dall_e_2, "a hat", params, [image, mask]))
    assert parts["image"] == ("image.png", image.read(), "image/png")
    assert parts["mask"] == ("mask.png", mask.read(), "image/png")
    assert parts["response_format"] == (None, "b64_json") and parts["n"] == (None, "2")
    gpt = next(m for m in openai.MODELS if m.name == "gpt-image-1")
    parts = dict(openai.edit_form(gpt, "a hat", validate_params(gpt, {}), [image]))
    assert "mask" not in parts and "response_format" not in parts and parts["output_format"] == (None, "png")


def test_models_that_cannot_edit_declare_no_image_and_masks_are_small_pngs_the_image_s_size() -> None:
    dall_e_3 = next(m for m in openai.MODELS if m.name == "dall-e-3")
    assert dall_e_3.image_inputs == ()  # images/edits takes dall-e-2 and the gpt-image models only
    for spec in openai.MODELS:
        mask = spec.image_input("mask")
        if mask is not None:
            assert mask.field == "mask" and mask.formats == ("png",) and mask.same_size_as_image
            assert mask.max_bytes == 4 * 1024 * 1024
    dall_e_2 = next(m for m in openai.MODELS if m.name == "dall-e-2").image_input("image")
    assert dall_e_2 is not None and dall_e_2.square and dall_e_2.formats == ("png",)


@pytest.mark.parametrize("spec", [m for m in openai.MODELS if m.kind == "video"], ids=lambda m: m.name)
def test_a_first_frame_goes_as_the_input_reference_file_part(components, spec) -> None:
    validator = _validator(components, "CreateVideoMultipartBody")
    frame = _png_reference("image", (128, 72))
    params = validate_params(spec, {})
    parts = openai.video_form(spec, "waves", params, [frame])
    assert parts["input_reference"] == ("image.png", frame.read(), "image/png")
    form = openai_spec.form_values("CreateVideoMultipartBody", _fields(parts.items()))
    errors = [e.message for e in validator.iter_errors(form)]
    assert errors == [], (form, errors)


def test_a_role_the_model_does_not_declare_is_refused_before_sending() -> None:
    sora = next(m for m in openai.MODELS if m.name == "sora-2")
    with pytest.raises(InvalidInput) as refused:
        openai.video_form(sora, "waves", validate_params(sora, {}), [_png_reference("mask")])
    assert refused.value.field == "mask"
