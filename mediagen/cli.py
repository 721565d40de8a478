"""``python -m mediagen``: JSON on stdout, messages on stderr.

Every failure is one line on stderr, ``error: `` and what went wrong. Exit codes come from the
error tree (``errors``): 0 success; 1 it failed (a generation, recorded as a failed job; the
database or a file could not be used); 2 refused (invalid input or settings, no such job, not
allowed, a database missing beside earlier media; nothing was created or changed); 3 an internal
error, a bug (the traceback with ``--verbose``). As other Unix tools: 130 after Ctrl+C, and 141,
quietly, when the reader of stdout went away early (``jobs | head``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import cli_compare
from .admin import rollup
from .auth import keys as api_keys
from .config import Settings
from .db.engine import explain
from .errors import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED, InvalidInput, MediagenError
from .jobs import actions, queries
from .jobs.lineage import Derivation, Lineage
from .jobs.reference_sources import job_id_in
from .jobs.references import ImageRef
from .jobs.schema import JobOut
from .jobs.status import JobKind, JobStatus
from .media.derive import copy_to, derive
from .studio import Studio
from .worker.loop import Worker
from .worker.sweep import tick

log = logging.getLogger("mediagen.cli")
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, what a shell reports after Ctrl+C
EXIT_READER_GONE = 128 + signal.SIGPIPE  # 141, what a shell reports for `yes | head`
REF_HELP = "a job id (its first image), a file path or an http(s) URL"


class _ReaderGone(Exception):
    """Whoever read our stdout closed it early (`| head` had enough)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mediagen", description="Generate and manage media jobs.")
    parser.add_argument("--verbose", "-v", action="store_true", help="log more, and show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True)

    image = sub.add_parser("image", help="generate images now and print the finished job")
    image.add_argument("prompt")
    image.add_argument("--model", help="catalogue model name (default: first configured image model)")
    image.add_argument("--size", help="WIDTHxHEIGHT, e.g. 1024x1024")
    image.add_argument("--n", type=int, help="how many images")
    image.add_argument("--seed", type=int, help="same prompt and seed give the same result")
    image.add_argument("--image", metavar="REF", help=f"edit this image: {REF_HELP}")
    image.add_argument("--mask", metavar="REF", help="where the edit may paint: a PNG whose transparent pixels mark it")

    video = sub.add_parser("video", help="queue a video job (and with --wait, follow it to the end)")
    video.add_argument("prompt")
    video.add_argument("--model", help="catalogue model name (default: first configured video model)")
    video.add_argument("--duration", type=int, help="length in seconds")
    video.add_argument("--size", help="WIDTHxHEIGHT, e.g. 1280x720")
    video.add_argument("--seed", type=int, help="same prompt and seed give the same result")
    video.add_argument("--wait", action="store_true", help="poll the job here until it ends")
    video.add_argument("--image", metavar="REF", help=f"start the video on this image: {REF_HELP}")
    video.add_argument("--webhook-url", help="POST the job's final state here, signed (Standard Webhooks)")

    listing = sub.add_parser("jobs", help="list jobs, newest first")
    listing.add_argument("--status", choices=[s.value for s in JobStatus])
    listing.add_argument("--kind", choices=[k.value for k in JobKind])
    listing.add_argument("--limit", type=int, default=50)

    for name, text in (
        ("job", "show one job with its events"),
        ("cancel", "cancel a queued or running job"),
        ("retry", "start a new job with the same parameters"),
    ):
        sub.add_parser(name, help=text).add_argument("id")

    worker = sub.add_parser("worker", help="run a worker: polling, copying results, housekeeping")
    worker.add_argument("--once", action="store_true", help="run a single tick, wait for in-process renders, and exit")

    db = sub.add_parser("db", help="database maintenance")
    db.add_argument(
        "action",
        choices=["upgrade", "rebuild-metrics", "create"],
        help="upgrade: bring the schema to the latest revision; rebuild-metrics: recount the admin metrics from "
        "the jobs; create: make a new, empty database even though media of earlier jobs is in the data dir "
        "(they are not listed in it)",
    )

    cli_compare.add_parser(sub)
    sub.add_parser("models", help="list the models configured here, their aliases and options")

    keys = sub.add_parser("keys", help="API keys: create (the secret is shown once), list, revoke")
    keys_sub = keys.add_subparsers(dest="keys_action", required=True)
    create = keys_sub.add_parser("create", help="make a key acting as a user; prints it once")
    create.add_argument("--user", required=True, help="the e-mail address the key acts as (its role: MEDIAGEN_ROLES)")
    create.add_argument("--name", default="", help="what the key is for, e.g. 'nightly renders'")
    listed = keys_sub.add_parser("list", help="list keys (never their secrets)")
    listed.add_argument("--user", help="only this user's keys")
    keys_sub.add_parser("revoke", help="revoke a key by id").add_argument("id")

    download = sub.add_parser("download", help="save a job's output, converted to another format if asked")
    download.add_argument("id")
    download.add_argument("--index", type=int, default=0, help="which output of the job (default 0)")
    download.add_argument(
        "--format",
        help="images: png, jpeg, webp; videos: mp4, webm, gif or webp (short animated previews); any case",
    )
    download.add_argument(
        "--output", "-o", help="file to write, or a folder to write it into (default: the stored file name, here)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.command == "worker" or args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # A line per provider request (httpx) or per tick (APScheduler) would bury the worker's own
    # log under a thousand lines every poll interval.
    for chatty in ("httpx", "apscheduler"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        return _run(args)
    except _ReaderGone:
        # The interpreter's last flush of stdout would complain of the broken pipe: send it nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_READER_GONE
    except KeyboardInterrupt as exc:
        _fail(f"interrupted; {exc}" if str(exc) else "interrupted")
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except Exception as exc:  # pydantic's message names the setting and the problem
        _fail(f"invalid settings: {_settings_problem(exc)}")
        return EXIT_REFUSED
    studio = None
    try:
        # `db` commands bring the schema up to date themselves, and say so.
        role = "worker" if args.command == "worker" else "cli"  # names its database connections
        studio = Studio.open(settings, migrate=args.command != "db", role=role)
        return COMMANDS[args.command](studio, args)
    except _ReaderGone:
        raise
    except MediagenError as exc:
        _fail(str(exc))
        return exc.exit_code
    except Exception as exc:
        explained = explain(exc, settings.resolved_database_url)  # a damaged database file, a full disk
        if explained is not None:
            _fail(str(explained))
            return explained.exit_code
        if args.verbose:
            _fail(f"internal error: {type(exc).__name__}: {exc}")
            log.exception("the traceback")
        else:
            _fail(f"internal error: {type(exc).__name__}: {exc} (run again with --verbose for the traceback)")
        return EXIT_INTERNAL
    finally:
        if studio is not None:
            studio.close()


def _fail(message: str) -> None:
    """The one line a failure leaves: messages of several lines (SQLAlchemy's) are joined."""
    print("error: " + "; ".join(part.strip() for part in message.splitlines() if part.strip()), file=sys.stderr)


def _settings_problem(exc: Exception) -> str:
    """Which variables are wrong and why, on one line."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{_variable(error['loc'])}: {error['msg']}" for error in exc.errors())
    return f"{exc} ({exc.__cause__})" if exc.__cause__ else str(exc)  # the JSON that did not parse


def _variable(loc: tuple[int | str, ...]) -> str:
    name = f"MEDIAGEN_{str(loc[0]).upper()}" if loc else "settings"
    return f"{name} ({'.'.join(str(part) for part in loc[1:])})" if len(loc) > 1 else name


def _emit(data: Any) -> None:
    try:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        sys.stdout.flush()  # here, so a closed pipe is noticed here and not at exit
    except BrokenPipeError:
        raise _ReaderGone from None


def _shown(studio: Studio, job: Any, *, events: bool = False) -> dict[str, Any]:
    return JobOut.of(job, studio.storage, events=events).data()


def _finished(studio: Studio, job: Any) -> int:
    _emit(_shown(studio, job))
    if job.status in (JobStatus.SUCCEEDED, JobStatus.QUEUED, JobStatus.RUNNING):
        return EXIT_OK
    print(f"error: job {job.id} {job.status}: {job.error_message}", file=sys.stderr)
    return EXIT_FAILED


def _references(image: str | None, mask: str | None, how: Derivation) -> tuple[list[ImageRef], Lineage | None]:
    """The images named by ``--image``/``--mask``; an ``--image`` that is one of our jobs is
    also recorded as where the new job came from."""
    refs = [ImageRef(role, source=ref) for role, ref in (("image", image), ("mask", mask)) if ref is not None]
    parent = job_id_in(image)
    return refs, Lineage(parent, how) if parent else None


def _image(studio: Studio, args: argparse.Namespace) -> int:
    params = {"size": args.size, "n": args.n, "seed": args.seed}
    refs, lineage = _references(args.image, args.mask, Derivation.EDIT)
    job = actions.generate_image(studio, args.prompt, model=args.model, params=params, references=refs, lineage=lineage)
    return _finished(studio, job)


def _video(studio: Studio, args: argparse.Namespace) -> int:
    params = {"duration": args.duration, "size": args.size, "seed": args.seed}
    refs, lineage = _references(args.image, None, Derivation.VIDEO)
    job = actions.submit_video(
        studio,
        args.prompt,
        model=args.model,
        params=params,
        webhook_url=args.webhook_url,
        references=refs,
        lineage=lineage,
    )
    if args.wait:
        job = _wait(studio, job.id)
    return _finished(studio, job)


def _wait(studio: Studio, job_id: str) -> Any:
    worker_id, last = studio.owner_id, None
    try:
        while True:
            tick(studio, worker_id=worker_id)
            job = queries.get_job(studio, job_id)
            if (job.status, job.progress) != last:
                print(f"{job.id}: {job.status} {job.progress}%", file=sys.stderr)
                last = (job.status, job.progress)
            if JobStatus(job.status).is_final:
                return job
            time.sleep(min(0.5, studio.settings.poll_interval_s))
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"job {job_id} is left to the workers (python -m mediagen job {job_id} shows how it goes)"
        ) from None


def _jobs(studio: Studio, args: argparse.Namespace) -> int:
    found = queries.list_jobs(studio, status=args.status, kind=args.kind, limit=args.limit)
    _emit([_shown(studio, job) for job in found])
    return EXIT_OK


def _job(studio: Studio, args: argparse.Namespace) -> int:
    _emit(_shown(studio, queries.get_job(studio, args.id), events=True))
    return EXIT_OK


def _cancel(studio: Studio, args: argparse.Namespace) -> int:
    _emit(_shown(studio, actions.cancel_job(studio, args.id)))
    return EXIT_OK


def _retry(studio: Studio, args: argparse.Namespace) -> int:
    return _finished(studio, actions.retry_job(studio, args.id))


def _worker(studio: Studio, args: argparse.Namespace) -> int:
    worker = Worker(studio)
    if args.once:
        _emit(worker.run_once().counts())
        return EXIT_OK
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    worker.start()
    print(
        f"worker {worker.worker_id} polling every {studio.settings.poll_interval_s} s; Ctrl+C to stop", file=sys.stderr
    )
    stop.wait()
    worker.stop()
    return EXIT_OK


def _db(studio: Studio, args: argparse.Namespace) -> int:
    # Only `create` may make a database where media of earlier jobs says one is missing.
    earlier_media = None if args.action == "create" else studio.settings.media_dir
    changed = studio.db.upgrade(earlier_media=earlier_media)
    print(
        changed or f"the database {studio.db.where} is at revision {studio.db.revision()}, the latest", file=sys.stderr
    )
    if args.action == "rebuild-metrics":
        with studio.db.engine.begin() as connection:
            counted = rollup.rebuild(connection)
        print(f"metrics recounted from {counted} finished job(s); deleted jobs are no longer in them", file=sys.stderr)
    return EXIT_OK


def _models(studio: Studio, args: argparse.Namespace) -> int:
    _emit(
        [
            {
                "name": m.name,
                "provider": m.provider,
                "kind": str(m.kind),
                "label": m.label,
                "aliases": studio.catalog.aliases_of(m.name),
                "params": {p.name: {"allowed": p.describe(), "default": p.default} for p in m.params},
                # What `--image`/`--mask` may give it: {role: what is allowed}; {} for text-only models.
                "image_inputs": {i.role: i.describe() for i in m.image_inputs},
            }
            for m in studio.catalog.models()
        ]
    )
    return EXIT_OK


def _keys(studio: Studio, args: argparse.Namespace) -> int:
    if args.keys_action == "create":
        info, secret = api_keys.create_key(studio, args.user, args.name)
        data = info.data()
        _emit(
            {
                "id": data["id"],
                "key": secret,
                "user": data["user"],
                "name": data["name"],
                "created_at": data["created_at"],
            }
        )
        print("this is the only time the key is shown; keep it somewhere safe", file=sys.stderr)
    elif args.keys_action == "list":
        _emit([info.data() for info in api_keys.list_keys(studio, user=args.user)])
    else:
        _emit(api_keys.revoke_key(studio, args.id).data())
    return EXIT_OK


def _download(studio: Studio, args: argparse.Namespace) -> int:
    job = queries.get_job(studio, args.id)
    if not job.assets:
        raise InvalidInput("id", f"job {job.id} {actions.state_phrase(job.status)} and has no outputs")
    if not 0 <= args.index < len(job.assets):
        raise InvalidInput("index", f"{args.index} is out of range", f"0–{len(job.assets) - 1}")
    output = _output(args.output)  # before converting: a wrong path is told at once
    asset = job.assets[args.index]
    fmt = args.format or asset.key.rsplit(".", 1)[-1]
    made = derive(studio.storage, asset, job.kind, fmt)
    target = output / made.file_name if output.is_dir() else output
    written = _save(studio, made.key, target)
    _emit(
        {"path": str(target), "bytes": written, "content_type": made.content_type, "url": studio.storage.url(made.key)}
    )
    return EXIT_OK


def _output(given: str | None) -> Path:
    """Where `download -o` writes: a file in a folder that exists, or a folder (as `cp` takes one)."""
    if not given:
        return Path.cwd()
    path = Path(given).expanduser()
    if path.is_dir():
        return path
    folder = path if given.endswith(("/", os.sep)) else path.parent
    if folder.exists() and not folder.is_dir():
        raise InvalidInput("output", f"{folder} is not a folder", "a file in an existing folder, or a folder")
    if not folder.exists():
        raise InvalidInput("output", f"the folder {folder} does not exist", "a file in an existing folder, or a folder")
    return path


def _save(studio: Studio, key: str, target: Path) -> int:
    """Copy the stored object to ``target`` whole or not at all: a failed copy (a full disk) leaves
    no half file, and a file already there is replaced only by a complete one."""
    in_place = target.exists() and not target.is_file()  # a device or a pipe (/dev/stdout) is written as it is
    part = target if in_place else target.with_name(f".{target.name}.{os.getpid()}.part")
    saved = in_place
    try:
        with part.open("wb") as out:
            written = copy_to(studio.storage, key, out)
        if not in_place:
            part.replace(target)
        saved = True
    except OSError as exc:
        raise MediagenError(f"could not write {target}: {exc.strerror or exc}", code="output_error") from exc
    finally:
        if not saved:
            part.unlink(missing_ok=True)
    return written


COMMANDS = {
    "image": _image,
    "video": _video,
    "jobs": _jobs,
    "job": _job,
    "cancel": _cancel,
    "retry": _retry,
    "worker": _worker,
    "db": _db,
    "models": _models,
    "keys": _keys,
    "download": _download,
    "compare": lambda studio, args: cli_compare.run(studio, args, _emit),
}
