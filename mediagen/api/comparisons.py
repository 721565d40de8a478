"""``/api/compare``: one prompt on 2–6 models or settings side by side, kept as a group, through
the same core functions (``jobs.compare``) as the Compare page and the CLI."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from ..auth.roles import Capability, User
from ..db.tables import Job
from ..jobs import compare
from ..jobs.references import ImageRef
from ..jobs.schema import JobOut
from ..studio import Studio
from . import idempotency
from .callers import caller, current_studio, require
from .shapes import ERRORS

router = APIRouter(tags=["compare"], responses=ERRORS)
Caller = Annotated[User, Depends(caller)]
# What an option's value may be: what a form or a command line gives.
OptionValue = str | int | float | bool | None
Options = dict[str, OptionValue]
REPLAY_DOC = "Send the same Idempotency-Key again (within 24 h) to get the first answer back; nothing is made twice."


class ColumnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="A model or alias from GET /v1/models.", max_length=256)
    params: Options = Field(
        default_factory=dict, description="This column's own options, over the shared ones; strict."
    )


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="The prompt every column runs.", max_length=100_000)
    models: list[str] | None = Field(
        None, description="One column per model, with the shared options. Give this or `columns`."
    )
    columns: list[ColumnIn] | None = Field(
        None, description="Columns with their own options (the same model twice with other seeds, say)."
    )
    params: Options = Field(
        default_factory=dict,
        description="Options shared by every column; one a column's model does not take is skipped for it "
        "(listed in the column's `skipped`), one no column's model takes is refused.",
    )
    kind: Literal["image", "video"] = Field("image", description="One kind per comparison: the prompt is shared.")
    image: str | None = Field(
        None,
        description="An image every column starts from: the id of one of your jobs, or an http(s) URL.",
        max_length=4096,
    )

    @model_validator(mode="after")
    def _one_way_to_give_columns(self) -> CompareRequest:
        if (self.models is None) == (self.columns is None):
            raise ValueError("give either `models` or `columns`")
        return self

    def as_columns(self) -> list[compare.Column]:
        if self.models is not None:
            return [compare.Column(model) for model in self.models]
        return [compare.Column(c.model, dict(c.params)) for c in self.columns or []]


class StarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str | None = Field(description="One of the group's jobs; null clears the star.", max_length=64)


class RerunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: Options = Field(default_factory=dict, description="Options to change; the rest stay as the column's.")


class ColumnOut(BaseModel):
    index: int
    model: str
    params: dict[str, Any]
    skipped: list[str]
    job_id: str | None
    status: str
    runs: int
    seconds: float | None
    estimated_cost: float | None
    error: str | None


class ComparisonOut(BaseModel):
    id: str
    kind: str
    prompt: str
    owner: str
    created_at: str
    winner_job_id: str | None
    estimated_cost: float | None
    finished: bool
    columns: list[ColumnOut]
    jobs: list[JobOut]


def comparison_data(studio: Studio, view: compare.ComparisonView) -> dict[str, Any]:
    """The group as ``ComparisonOut`` states it: its columns, and each column's newest job."""
    columns = [
        {
            "index": c.index,
            "model": c.model,
            "params": c.params,
            "skipped": c.skipped,
            "job_id": c.job.id if c.job is not None else None,
            "status": c.status,
            "runs": c.runs,
            "seconds": c.seconds,
            "estimated_cost": c.estimated_cost,
            "error": c.error if c.status != "succeeded" else None,
        }
        for c in view.columns
    ]
    return {
        "id": view.id,
        "kind": view.kind,
        "prompt": view.prompt,
        "owner": view.owner,
        "created_at": view.created_at.isoformat(),
        "winner_job_id": view.winner_job_id,
        "estimated_cost": view.estimated_cost,
        "finished": view.finished,
        "columns": columns,
        "jobs": [JobOut.of(job, studio.storage).data() for job in view.jobs],
    }


async def _answer(studio: Studio, comparison_id: str, status_code: int, user: User) -> JSONResponse:
    view = await run_in_threadpool(compare.get, studio, comparison_id, viewer=user)
    data = await run_in_threadpool(comparison_data, studio, view)
    return JSONResponse(data, status_code=status_code)


async def _finished(running: list[Future[Job]]) -> None:
    """Await the image columns without holding a thread; a column that failed is a failed job,
    shown in the group, not an error of the request."""
    await asyncio.gather(*(asyncio.wrap_future(f) for f in running), return_exceptions=True)


@router.post(
    "/compare",
    status_code=201,
    response_model=ComparisonOut,
    summary="Run one prompt on several models or settings side by side",
    description="2–6 columns, all validated first (one invalid column refuses the group, `error.param` names "
    "it: `columns[1].model`, `columns[0].params.seed`), then started at once. Image columns are awaited; "
    "video columns answer queued (poll GET /api/compare/{id}). A model that fails fails its column only. " + REPLAY_DOC,
)
async def post_compare(body: CompareRequest, request: Request, user: Caller) -> Response:
    studio = current_studio()

    async def create() -> Response:
        require(user, Capability.GENERATE, "compare models")
        references = [ImageRef(source=body.image)] if body.image else []
        started = await run_in_threadpool(
            lambda: compare.launch(
                studio,
                body.prompt,
                body.as_columns(),
                kind=body.kind,
                shared_params=body.params,
                owner=user.email,
                references=references,
                reader=user,
            )
        )
        await _finished(list(started.running.values()))
        return await _answer(studio, started.comparison.id, 201, user)

    return await idempotency.once(studio, request, user, body.model_dump(), create)


@router.get("/compare/{comparison_id}", response_model=ComparisonOut, summary="A comparison and its columns")
async def get_comparison(comparison_id: str, user: Caller) -> Response:
    return await _answer(current_studio(), comparison_id, 200, user)


@router.post(
    "/compare/{comparison_id}/star",
    response_model=ComparisonOut,
    summary="Star the winning column's job (null clears it)",
    description="The comparison's owner or an admin.",
)
async def star_column(comparison_id: str, body: StarRequest, user: Caller) -> Response:
    studio = current_studio()
    await run_in_threadpool(compare.star, studio, comparison_id, body.job_id, user)
    return await _answer(studio, comparison_id, 200, user)


@router.post(
    "/compare/{comparison_id}/columns/{column}/rerun",
    status_code=201,
    response_model=ComparisonOut,
    summary="Run one column again, with the same options or some changed",
    description="A new job in the same column (the group shows the newest; earlier runs stay stored). "
    "An image column is awaited. " + REPLAY_DOC,
)
async def rerun_column(
    comparison_id: str, column: int, request: Request, user: Caller, body: RerunRequest | None = None
) -> Response:
    studio = current_studio()
    body = body or RerunRequest()

    async def create() -> Response:
        require(user, Capability.GENERATE, "re-run columns")
        _job, running = await run_in_threadpool(
            compare.relaunch_column, studio, comparison_id, column, user, dict(body.params)
        )
        await _finished([running] if running is not None else [])
        return await _answer(studio, comparison_id, 201, user)

    fields = {"comparison": comparison_id, "column": column, **body.model_dump()}
    return await idempotency.once(studio, request, user, fields, create)
