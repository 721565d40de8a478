"""Shared widgets: status badges, model option inputs, media players, error messages.

Anything a user or a provider wrote (prompts, error texts) is shown as text, never as HTML or
Markdown: ``plain`` escapes Markdown, and HTML we build ourselves escapes every value.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import streamlit as st

from mediagen.catalog import Choice, IntRange, ModelSpec, Param, Size
from mediagen.db.tables import Job, utcnow
from mediagen.errors import InvalidInput, MediagenError
from mediagen.jobs.status import JobKind, JobStatus
from mediagen.studio import Studio

# label, badge colour, icon: every status has its own look.
STATUS_LOOK: dict[str, tuple[str, str, str]] = {
    JobStatus.QUEUED: ("Queued", "gray", ":material/schedule:"),
    JobStatus.RUNNING: ("Running", "blue", ":material/autorenew:"),
    JobStatus.SUCCEEDED: ("Succeeded", "green", ":material/check_circle:"),
    JobStatus.FAILED: ("Failed", "red", ":material/error:"),
    JobStatus.CANCELED: ("Canceled", "orange", ":material/block:"),
    JobStatus.TIMED_OUT: ("Timed out", "violet", ":material/timer_off:"),
}
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")
CUSTOM_SIZE = "Custom…"


def plain(text: str | None) -> str:
    """Text safe to pass to Markdown-rendering widgets: shows literally."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text or "")


def status_badge(status: str) -> None:
    label, color, icon = STATUS_LOOK[JobStatus(status)]
    st.badge(label, icon=icon, color=color)  # type: ignore[arg-type]


def status_label(status: str) -> str:
    return STATUS_LOOK[JobStatus(status)][0]


def human_bytes(size: int | None) -> str:
    if size is None:
        return "–"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def elapsed(job: Job, now: datetime | None = None) -> str:
    end = job.finished_at or now or utcnow()
    seconds = max(0, int((end - job.created_at).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    model: str
    params: dict[str, Any]
    webhook_url: str | None
    submitted: bool


def generation_form(studio: Studio, kind: JobKind, placeholder: str, icon: str) -> GenerationRequest:
    """Prompt, model, that model's options and (videos) a webhook URL, and whether Generate was
    clicked."""
    prefix = kind.value
    prompt = st.text_area(
        "Prompt",
        key=f"{prefix}-prompt",
        height=140,
        max_chars=studio.settings.max_prompt_chars,
        placeholder=placeholder,
    )
    names = [m.name for m in studio.catalog.models(kind)]
    model = st.selectbox("Model", names, key=f"{prefix}-model", format_func=lambda n: _model_label(studio, n))
    params = param_inputs(studio.catalog.get(model), prefix)
    webhook_url = None
    if kind is JobKind.VIDEO:
        webhook_url = st.text_input(
            "Webhook URL (optional)",
            key=f"{prefix}-webhook",
            placeholder="https://example.com/hooks/mediagen",
            disabled=studio.settings.webhook_secret is None,
            help="The job's final state is POSTed here, signed per Standard Webhooks."
            if studio.settings.webhook_secret
            else "Webhooks are off: set MEDIAGEN_WEBHOOK_SECRET to turn them on.",
        )
    submitted = st.button("Generate", type="primary", key=f"{prefix}-generate", icon=icon)
    return GenerationRequest(prompt, model, params, webhook_url or None, submitted)


def param_inputs(spec: ModelSpec, prefix: str) -> dict[str, Any]:
    """One input per option the model accepts, offering only allowed values."""
    values: dict[str, Any] = {}
    for param in spec.params:
        values[param.name] = _param_input(param, f"{prefix}-{spec.name}-{param.name}")
    return values


def _param_input(param: Param, key: str) -> Any:
    label = param.name.capitalize() if param.name != "n" else "Number of images"
    if isinstance(param, Size):
        options = list(param.options)
        if not param.choices:
            options.append(CUSTOM_SIZE)
        chosen = st.selectbox("Size", options, index=options.index(param.default), key=key, help=param.help)
        if chosen == CUSTOM_SIZE:
            return st.text_input("Custom size (WIDTHxHEIGHT)", key=f"{key}-custom", help=param.describe())
        return chosen
    if isinstance(param, Choice):
        options = list(param.choices)
        index = options.index(param.default) if param.default in options else 0
        return st.selectbox(label, options, index=index, key=key, help=param.help)
    if isinstance(param, IntRange):
        if param.low == param.high:  # a fixed value (dall-e-3 makes one image): nothing to choose
            return param.low
        if param.default is None:  # optional, e.g. seed: empty means "provider decides"
            return st.number_input(
                label,
                min_value=param.low,
                max_value=param.high,
                value=None,
                step=1,
                key=key,
                placeholder="any",
                help=param.help,
            )
        if param.high - param.low <= 20:
            return st.slider(label, param.low, param.high, param.default, key=key, help=param.help)
        return st.number_input(label, param.low, param.high, param.default, step=1, key=key, help=param.help)
    raise TypeError(f"no input for {type(param).__name__}")


def show_error(exc: MediagenError) -> None:
    if isinstance(exc, InvalidInput):
        text = f"**{plain(exc.field)}**: {plain(exc.problem)}"
        if exc.allowed:
            text += f"  \nAllowed: {plain(exc.allowed)}"
        st.error(text, icon=":material/edit_note:")
    else:
        st.error(plain(str(exc)), icon=":material/error:")


def job_error(job: Job) -> None:
    if job.error_message:
        st.error(plain(job.error_message), icon=STATUS_LOOK[JobStatus(job.status)][2])


def video_player(url: str, poster: str | None) -> None:
    """A <video> with its poster frame (st.video has no poster); every value escaped."""
    poster_attr = f' poster="{html.escape(poster, quote=True)}"' if poster else ""
    st.html(
        f'<video class="mediagen-video" controls preload="metadata" playsinline{poster_attr} '
        f'src="{html.escape(url, quote=True)}" '
        'style="width:100%;border-radius:0.5rem;background:#000"></video>'
    )


def copyable_url(url: str) -> None:
    st.code(url, language=None, wrap_lines=True)


def _model_label(studio: Studio, name: str) -> str:
    """The model's label, with the other names it answers to (``MEDIAGEN_MODEL_ALIASES``)."""
    aliases = studio.catalog.aliases_of(name)
    label = studio.catalog.get(name).label
    return f"{label} (also {', '.join(aliases)})" if aliases else label
