"""Compare: one prompt on 2–6 columns (each a model, or the same model with other settings or
seed), all started at once through the one engine, kept together as a ``Comparison``.

A comparison is of one kind (images or videos): the prompt and the shared options are the same
for every column, and an image and a video cannot be told apart side by side. Shared options a
column's model does not take are skipped for it (and listed in the view), so "size" shared by a
model that has no size does not refuse the group; options given for one column are strict. Every
column is validated before anything is written: one invalid column refuses the whole group,
naming ``columns[i].model`` or ``columns[i].params.<name>``. Once started, each column is a job
of its own: a model that fails makes a failed job and spoils nothing for the others.

Reading groups back (``get``, ``list_comparisons``, the views) is in ``comparisons``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..auth.roles import Role, User
from ..catalog import ModelSpec
from ..db.tables import Comparison, Job
from ..errors import Forbidden, InvalidInput, MediagenError, NotFound
from ..studio import Studio
from . import actions
from .compare_inputs import check_for_each_model, inputs_of, rereadable
from .comparisons import ColumnView, ComparisonPage, ComparisonView, get, list_comparisons, may_see
from .lineage import Placement
from .references import ImageRef
from .status import JobKind

__all__ = [
    "MAX_COLUMNS",
    "MIN_COLUMNS",
    "Column",
    "ColumnView",
    "ComparisonPage",
    "ComparisonView",
    "Launch",
    "get",
    "launch",
    "list_comparisons",
    "rerun_column",
    "star",
    "start",
    "wait",
]

MIN_COLUMNS, MAX_COLUMNS = 2, 6


@dataclass(frozen=True)
class Column:
    model: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Planned:
    spec: ModelSpec
    params: dict[str, Any]  # shared options it takes, its own over them, validated
    skipped: list[str]


@dataclass(frozen=True)
class Launch:
    """A started group, and the futures of its image columns running in this process (by column
    number): an HTTP handler awaits them without holding a thread, the pages do not wait."""

    comparison: Comparison
    running: dict[int, Future[Job]]


def start(studio: Studio, prompt: Any, columns: Sequence[Column], **options: Any) -> Comparison:
    """Validate every column, then start them all at once; returns without waiting (``launch``'s
    options: kind, shared_params, owner, references shared by every column, reader)."""
    return launch(studio, prompt, columns, **options).comparison


def launch(
    studio: Studio,
    prompt: Any,
    columns: Sequence[Column],
    *,
    kind: JobKind | str = JobKind.IMAGE,
    shared_params: Mapping[str, Any] | None = None,
    owner: str = "local",
    references: Sequence[ImageRef] = (),
    reader: User | None = None,
) -> Launch:
    """Validate every column, then start them all at once, keeping the image columns' futures. The
    ``references`` are shared by every column; a job REF among them must be one ``reader`` may
    see (None: the studio itself, the CLI)."""
    job_kind = _kind(kind)
    shared = {k: v for k, v in (shared_params or {}).items() if v is not None}
    plan = _plan(studio, job_kind, prompt, columns, shared, references)
    text = actions.validate(studio, job_kind, prompt, plan[0].spec.name, plan[0].params).prompt
    if job_kind is JobKind.IMAGE:
        studio.check_generation_room(len(plan))
    refs = rereadable(references)
    check_for_each_model(studio, [p.spec for p in plan], refs, reader)
    with studio.db.write() as session:
        comparison = Comparison(
            kind=job_kind,
            prompt=text,
            owner=owner,
            columns=[{"model": p.spec.name, "params": p.params, "skipped": p.skipped} for p in plan],
        )
        session.add(comparison)
    running: dict[int, Future[Job]] = {}
    errors: dict[int, str] = {}
    for index, planned in enumerate(plan):
        try:
            future = _start_column(studio, comparison, index, planned.spec.name, planned.params, owner, refs(), reader)
        except MediagenError as exc:
            # Validated above, so what is left is the moment (a full backlog, a database hiccup):
            # the column says why, and re-running it starts it.
            errors[index] = str(exc)
            continue
        if future is not None:
            running[index] = future
    if errors:
        _note_column_errors(studio, comparison.id, errors)
    return Launch(comparison, running)


def star(studio: Studio, comparison_id: str, job_id: str | None, actor: User) -> ComparisonView:
    """Mark the winner (one of the group's jobs), or clear it with None: the owner or an admin."""
    with studio.db.write() as session:
        comparison = _changeable(session, comparison_id, actor, "star a column of")
        if job_id is not None:
            job = session.get(Job, job_id)
            if job is None or job.comparison_id != comparison_id:
                raise InvalidInput("job_id", f"{job_id!r} is not a job of comparison {comparison_id}")
        comparison.winner_job_id = job_id
    return get(studio, comparison_id)


def rerun_column(
    studio: Studio,
    comparison_id: str,
    column: int,
    actor: User,
    params: Mapping[str, Any] | None = None,
) -> Job:
    """A new job in the same column, with the column's options (``params`` changed over them);
    returns it queued or running, as the group's first jobs start. The job is the group owner's,
    so the group stays whole in its owner's gallery even when an admin re-runs a column."""
    return _rerun(studio, comparison_id, column, actor, params)[0]


def relaunch_column(
    studio: Studio, comparison_id: str, column: int, actor: User, params: Mapping[str, Any] | None = None
) -> tuple[Job, Future[Job] | None]:
    """``rerun_column``, keeping an image's future (None for a video)."""
    return _rerun(studio, comparison_id, column, actor, params)


def wait(
    studio: Studio,
    comparison_id: str,
    timeout_s: float,
    *,
    tick: Callable[[], object] | None = None,
    every_s: float = 0.2,
) -> ComparisonView:
    """The group once every column's newest job has ended, or as it is after ``timeout_s``.
    ``tick`` runs between looks (the CLI advances a worker there, for video columns)."""
    deadline = time.monotonic() + timeout_s
    while True:
        view = get(studio, comparison_id)
        if view.finished or time.monotonic() >= deadline:
            return view
        if tick is not None:
            tick()
        time.sleep(every_s)


def _kind(kind: JobKind | str) -> JobKind:
    try:
        return JobKind(kind)
    except ValueError:
        raise InvalidInput("kind", f"{kind!r} is not a kind", [k.value for k in JobKind]) from None


def _plan(
    studio: Studio,
    kind: JobKind,
    prompt: Any,
    columns: Sequence[Column],
    shared: dict[str, Any],
    references: Sequence[ImageRef],
) -> list[_Planned]:
    if not MIN_COLUMNS <= len(columns) <= MAX_COLUMNS:
        raise InvalidInput("columns", f"{len(columns)} given", f"{MIN_COLUMNS}–{MAX_COLUMNS} columns")
    specs = [_column_model(studio, kind, index, column) for index, column in enumerate(columns)]
    taken_by_any = {p.name for spec in specs for p in spec.params}
    unknown = sorted(set(shared) - taken_by_any)
    if unknown:
        raise InvalidInput(f"params.{unknown[0]}", "is not an option of any column's model", sorted(taken_by_any))
    roles = sorted({ref.role for ref in references})
    plan = []
    for index, (spec, column) in enumerate(zip(specs, columns, strict=True)):
        own = {k: v for k, v in (column.params or {}).items() if v is not None}
        taken = {k: v for k, v in shared.items() if spec.param(k) is not None}
        merged = {**taken, **own}
        try:
            params = actions.validate(studio, kind, prompt, spec.name, merged).params
        except InvalidInput as exc:
            raise _named(exc, index, spec, own) from None
        for role in roles:
            if spec.image_input(role) is None:
                takers = [m.name for m in studio.catalog.models(kind) if m.image_input(role) is not None]
                raise InvalidInput(
                    f"columns[{index}].model",
                    f"{spec.name} does not take {'an image' if role == 'image' else 'a ' + role}",
                    takers or "none",
                )
        if spec.needs_image and "image" not in roles:
            raise InvalidInput(f"columns[{index}].model", f"{spec.name} starts from an image: give one")
        plan.append(_Planned(spec, params, sorted(set(shared) - set(taken))))
    return plan


def _column_model(studio: Studio, kind: JobKind, index: int, column: Column) -> ModelSpec:
    where = f"columns[{index}].model"
    if not isinstance(column.model, str) or not column.model.strip():
        raise InvalidInput(where, "is missing", [m.name for m in studio.catalog.models(kind)])
    if column.model in studio.catalog and studio.catalog.get(column.model).kind != kind:
        other = studio.catalog.get(column.model).kind
        raise InvalidInput(
            where,
            f"{column.model} makes {other}s; a comparison is of one kind (its prompt is shared), here {kind}s",
            [m.name for m in studio.catalog.models(kind)],
        )
    try:
        return studio.model(column.model.strip(), kind)
    except InvalidInput as exc:
        raise InvalidInput(where, exc.problem, exc.allowed) from None


def _named(exc: InvalidInput, index: int, spec: ModelSpec, own: Mapping[str, Any]) -> InvalidInput:
    """The column's error with a field that says where: its own option, a shared one, the prompt."""
    column = f"columns[{index}]"
    if exc.field == "prompt":
        return InvalidInput("prompt", f"{exc.problem} for {column} ({spec.name})", exc.allowed)
    if exc.field in own or spec.param(exc.field) is None:
        return InvalidInput(f"{column}.params.{exc.field}", exc.problem, exc.allowed)
    return InvalidInput(f"params.{exc.field}", f"{exc.problem} for {column} ({spec.name})", exc.allowed)


def _start_column(
    studio: Studio,
    comparison: Comparison,
    index: int,
    model: str,
    params: dict[str, Any],
    owner: str,
    references: Sequence[ImageRef],
    reader: User | None,
) -> Future[Job] | None:
    placement = Placement(comparison.id, index)
    asked: dict[str, Any] = dict(model=model, params=params, owner=owner, placement=placement)
    asked.update(references=references, reader=reader)
    if comparison.kind == JobKind.IMAGE:
        return actions.start_image(studio, comparison.prompt, **asked)
    actions.submit_video(studio, comparison.prompt, **asked)
    return None


def _note_column_errors(studio: Studio, comparison_id: str, errors: Mapping[int, str]) -> None:
    with studio.db.write() as session:
        comparison = session.get(Comparison, comparison_id)
        if comparison is not None:
            columns = [dict(c) for c in comparison.columns]
            for index, message in errors.items():
                columns[index]["error"] = message
            comparison.columns = columns  # a new list, so the JSON column is written


def _changeable(session: Session, comparison_id: str, actor: User, what: str) -> Comparison:
    comparison = session.scalars(
        select(Comparison).where(Comparison.id == comparison_id).with_for_update()
    ).one_or_none()
    if comparison is None or not may_see(actor, comparison):
        raise NotFound(f"no comparison with id {comparison_id!r}")
    _require_change(actor, comparison, what)
    return comparison


def _require_change(actor: User, comparison: Comparison, what: str) -> None:
    """Its owner or an admin (as for jobs); a reviewer only looks."""
    if not actor.may_change(comparison.owner):
        mine = "your own" if actor.role is Role.CREATOR else "no"
        raise Forbidden(
            f"you can't {what} this comparison: it belongs to {comparison.owner}, "
            f"and as {actor.role} you may change {mine} comparisons"
        )


def _rerun(
    studio: Studio, comparison_id: str, column: int, actor: User, params: Mapping[str, Any] | None
) -> tuple[Job, Future[Job] | None]:
    view = get(studio, comparison_id, viewer=actor)
    _require_change(actor, view.comparison, "re-run a column of")
    if not 0 <= column < len(view.columns):
        raise InvalidInput("column", f"{column} is out of range", f"0–{len(view.columns) - 1}")
    shown = view.columns[column]
    kind = JobKind(view.kind)
    changed = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        cleaned = actions.validate(studio, kind, view.prompt, shown.model, {**shown.params, **changed}).params
    except InvalidInput as exc:
        raise InvalidInput(f"params.{exc.field}", exc.problem, exc.allowed) from None
    # A column that never started takes the group's images from a column that did.
    references = inputs_of(studio, shown.job or next(iter(view.jobs), None))
    future = _start_column(studio, view.comparison, column, shown.model, cleaned, view.owner, references, actor)
    _remember_column(studio, comparison_id, column, cleaned)
    newest = get(studio, comparison_id).columns[column].job
    assert newest is not None
    return newest, future


def _remember_column(studio: Studio, comparison_id: str, column: int, params: dict[str, Any]) -> None:
    """The column's options become the re-run's, so the next re-run starts from them."""
    with studio.db.write() as session:
        comparison = session.get(Comparison, comparison_id)
        if comparison is not None:
            columns = [dict(c) for c in comparison.columns]
            columns[column]["params"] = params
            columns[column].pop("error", None)
            comparison.columns = columns
