"""Shared widgets: status badges, model option inputs, media players, error messages.

Anything a user or a provider wrote (prompts, error texts) is shown as text, never as HTML or
Markdown: ``plain`` escapes Markdown, and HTML we build ourselves escapes every value.
"""

from __future__ import annotations

import html
import json
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
# Every ASCII punctuation CommonMark can read as syntax ("=" underlines a heading, "&" starts an
# entity, ":" a Streamlit directive such as :red[...]).
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&])")
# Streamlit rewrites some text after parsing, where escapes no longer count: web addresses become
# links, ":material/x:" an icon, ":streamlit:" or ":smile:" a picture. An invisible word joiner
# splits each such pattern; the text reads the same. E-mail addresses are left whole: people copy
# them (into MEDIAGEN_ROLES), and at most they become mailto: links, which load nothing.
_LIVE_AFTER_PARSING = re.compile(r"(?<=://)|(?<=www)(?=\.)|(?<=:)(?=material/|[a-z_+-][\w+-]*:)", re.IGNORECASE)
WORD_JOINER = "\u2060"
CUSTOM_SIZE = "Custom…"


def plain(text: str | None) -> str:
    """Text safe to pass to Markdown-rendering widgets (markdown, caption, info/warning/error/
    success, toast, labels): shows literally, makes no web link, image, markup or icon."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", _LIVE_AFTER_PARSING.sub(WORD_JOINER, text or ""))


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
    images: tuple[str, ...] = ()  # what it starts from (``StartImages.fingerprint``)

    @property
    def fingerprint(self) -> tuple[str, ...]:
        """What makes two presses of Generate the same request."""
        params = json.dumps(self.params, sort_keys=True, default=str)
        return (self.prompt, self.model, params, self.webhook_url or "", *self.images)


def generation_form(studio: Studio, kind: JobKind, placeholder: str) -> GenerationRequest:
    """Prompt, model, that model's options and (videos) a webhook URL."""
    prefix = kind.value
    # No max_chars: the browser would refuse a longer paste whole and say nothing. The prompt is
    # kept as typed, measured against the chosen model's limit, and refused at Generate.
    prompt = st.text_area("Prompt", key=f"{prefix}-prompt", height=140, placeholder=placeholder)
    measure = st.empty()
    names = [m.name for m in studio.catalog.models(kind)]
    model = st.selectbox("Model", names, key=f"{prefix}-model", format_func=lambda n: _model_label(studio, n))
    spec = studio.catalog.get(model)
    with measure:
        prompt_length(prompt, spec.prompt_limit(studio.settings.max_prompt_chars), spec.label)
    params = param_inputs(spec, prefix)
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
    return GenerationRequest(prompt, model, params, webhook_url or None)


def prompt_length(prompt: str, limit: int, model_label: str) -> None:
    """How long the prompt is against the model's limit, counted as the check counts it."""
    length = len(prompt.strip())
    if length > limit:
        st.warning(
            f"{length:,} characters: {plain(model_label)} takes at most {limit:,}. "
            f"Shorten it by {length - limit:,} to generate.",
            icon=":material/straighten:",
        )
    elif length:
        st.caption(f"{length:,} of {limit:,} characters")


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


def show_error(exc: MediagenError, lead: str | None = None) -> None:
    """The error as its message; a refused input names its field and what is allowed. ``lead``
    says what the error meant (``"Nothing was generated"``)."""
    before = f"{plain(lead)}.  \n" if lead else ""
    if isinstance(exc, InvalidInput):
        text = f"{before}**{plain(exc.field)}**: {plain(exc.problem)}"
        if exc.allowed:
            text += f"  \nAllowed: {plain(exc.allowed)}"
        st.error(text, icon=":material/edit_note:")
    else:
        st.error(before + plain(str(exc)), icon=":material/error:")


def job_heading(job: Job) -> None:
    """Which request a result answers: its status, prompt, model, time and job id."""
    status_badge(job.status)
    st.text(job.prompt if len(job.prompt) <= 160 else job.prompt[:157] + "…")
    st.caption(f"{job.model} · {job.created_at:%Y-%m-%d %H:%M} UTC · {elapsed(job)} · job {job.id}")


def job_progress(job: Job) -> None:
    label = "Waiting for the provider" if job.status == JobStatus.QUEUED else f"{job.progress}%"
    st.progress(job.progress / 100, text=label)


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
