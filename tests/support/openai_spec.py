"""OpenAI's published OpenAPI description (shared/specs), as JSON-schema validators."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "openai-openapi.yaml"
# Ours, not OpenAI's: the studio serves its own models, sizes and lengths under OpenAI's shapes.
OUR_OWN = ("VideoSize", "VideoSeconds")


@cache
def components() -> dict[str, Any]:
    if not SPEC.exists():
        raise FileNotFoundError(f"{SPEC} is missing: the shared specs must sit beside the repository")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC.open() as handle:
        return yaml.load(handle, Loader=loader)["components"]


def validator(schema: str, *, our_names: bool = False) -> Draft202012Validator:
    """A validator for one of OpenAI's component schemas; ``our_names`` lets sizes and seconds be
    any string (the shape stays OpenAI's)."""
    parts = components()
    if our_names:
        parts = copy.deepcopy(parts)
        for name in OUR_OWN:
            parts["schemas"][name] = {"type": "string"}
    return Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": parts})


def _types(prop: dict[str, Any]) -> set[str]:
    found = {prop["type"]} if isinstance(prop.get("type"), str) else set()
    for choice in prop.get("anyOf", []) + prop.get("oneOf", []):
        found |= _types(choice)
    return found


def form_values(schema: str, fields: dict[str, str]) -> dict[str, Any]:
    """Multipart fields as the schema types them: on the wire every field is text, and OpenAI
    reads ``n=2`` as the integer 2. File parts stay strings (the schema's ``format: binary``)."""
    properties = components()["schemas"][schema]["properties"]
    typed: dict[str, Any] = {}
    for name, text in fields.items():
        kinds = _types(properties.get(name, {}))
        if "integer" in kinds and text.lstrip("-").isdigit():
            typed[name] = int(text)
        elif "boolean" in kinds and text in ("true", "false"):
            typed[name] = text == "true"
        else:
            typed[name] = text
    return typed
