"""``python -m mediagen compare``: one prompt on several models side by side, as a comparison.

    python -m mediagen compare "a red kite" --model local-image --model "local-image seed=7" --size 512x512

Each ``--model`` is a column: a model name, optionally followed by that column's own options
(``NAME=VALUE``, space-separated); the other options are shared by every column. Prints
``{"group_id", "jobs"}`` once the image columns have ended (video columns: at once, queued, unless
``--wait``). Exit 0 when every column succeeded (or, for videos without ``--wait``, is queued), 1
when any failed (the others are still stored), 2 when the group was refused.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from .errors import EXIT_FAILED, EXIT_OK, InvalidInput
from .jobs import compare
from .jobs.references import ImageRef
from .jobs.schema import JobOut
from .jobs.status import JobKind, JobStatus
from .studio import Studio
from .worker.sweep import tick

REF_HELP = "a job id (its first image), a file path or an http(s) URL"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("compare", help="one prompt on 2–6 models or settings side by side, kept as a group")
    parser.add_argument("prompt")
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="'MODEL [NAME=VALUE ...]'",
        help="a column (give 2–6): a model, optionally with its own options, e.g. --model 'local-image seed=7'",
    )
    parser.add_argument(
        "--kind",
        choices=[k.value for k in JobKind],
        default=JobKind.IMAGE.value,
        help="what every column makes (one kind per comparison: the prompt is shared); default image",
    )
    parser.add_argument("--size", help="shared: WIDTHxHEIGHT, e.g. 1024x1024")
    parser.add_argument("--n", type=int, help="shared: how many images per column")
    parser.add_argument("--seed", type=int, help="shared: same prompt and seed give the same result")
    parser.add_argument("--duration", type=int, help="shared: video length in seconds")
    parser.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="another shared option (repeatable)"
    )
    parser.add_argument("--image", metavar="REF", help=f"every column starts from this image: {REF_HELP}")
    parser.add_argument("--wait", action="store_true", help="video columns: poll them here until they end")


def run(studio: Studio, args: argparse.Namespace, emit: Callable[[Any], None]) -> int:
    shared: dict[str, Any] = {"size": args.size, "n": args.n, "seed": args.seed, "duration": args.duration}
    shared.update(_options("param", args.param))
    columns = [_column(index, text) for index, text in enumerate(args.model)]
    references = [ImageRef(source=args.image)] if args.image else []
    started = compare.start(
        studio, args.prompt, columns, kind=args.kind, shared_params=shared, owner="local", references=references
    )
    if args.kind == JobKind.IMAGE:
        view = _wait(studio, started.id, studio.settings.image_deadline_s + 30)
    elif args.wait:
        view = _wait(studio, started.id, studio.settings.video_deadline_s + 60, video=True)
    else:
        view = compare.get(studio, started.id)
    emit({"group_id": view.id, "jobs": [JobOut.of(job, studio.storage).data() for job in view.jobs]})
    failed = False
    for column in view.columns:
        if column.job is None or JobStatus(column.job.status) not in _FINE:
            failed = True
            what = f"job {column.job.id} {column.job.status}" if column.job else "not started"
            print(f"error: column {column.index} ({column.model}): {what}: {column.error}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


_FINE = {JobStatus.SUCCEEDED, JobStatus.QUEUED, JobStatus.RUNNING}


def _column(index: int, text: str) -> compare.Column:
    model, *options = text.split()
    if not model:
        raise InvalidInput(f"columns[{index}].model", "is missing")
    return compare.Column(model, _options(f"columns[{index}].params", options))


def _options(field: str, pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise InvalidInput(field, f"{pair!r} is not NAME=VALUE", "e.g. seed=7")
        options[name.strip()] = value.strip()  # each option reads its text as it needs (numbers, sizes)
    return options


def _wait(studio: Studio, comparison_id: str, timeout_s: float, *, video: bool = False) -> compare.ComparisonView:
    # Image columns run in this process's generation pool; video columns need a worker's polls,
    # which this process makes itself, as `video --wait` does.
    advance = (lambda: tick(studio, worker_id=studio.owner_id)) if video else None
    try:
        return compare.wait(studio, comparison_id, timeout_s, tick=advance)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"comparison {comparison_id} is left to the workers (python -m mediagen job ID shows each column)"
        ) from None
