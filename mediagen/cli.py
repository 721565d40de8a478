"""``python -m mediagen``: JSON on stdout, messages on stderr.

Exit codes come from the error tree (``errors``): 0 success; 1 the generation failed (recorded as a
failed job); 2 refused (invalid input, no such job, not allowed; nothing was created or changed);
3 an internal error (one line here, the traceback with ``--verbose``).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .admin import rollup
from .auth import keys as api_keys
from .config import Settings
from .errors import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED, InvalidInput, MediagenError
from .jobs import actions, queries
from .jobs.schema import JobOut
from .jobs.status import JobKind, JobStatus
from .media.derive import copy_to, derive
from .studio import Studio
from .worker.loop import Worker
from .worker.sweep import tick

log = logging.getLogger("mediagen.cli")


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

    video = sub.add_parser("video", help="queue a video job (and with --wait, follow it to the end)")
    video.add_argument("prompt")
    video.add_argument("--model", help="catalogue model name (default: first configured video model)")
    video.add_argument("--duration", type=int, help="length in seconds")
    video.add_argument("--size", help="WIDTHxHEIGHT, e.g. 1280x720")
    video.add_argument("--seed", type=int, help="same prompt and seed give the same result")
    video.add_argument("--wait", action="store_true", help="poll the job here until it ends")
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
        choices=["upgrade", "rebuild-metrics"],
        help="rebuild-metrics: recount the admin metrics from the jobs",
    )

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
        "--format", help="images: png, jpeg, webp; videos: mp4, webm, gif or webp (short animated previews)"
    )
    download.add_argument("--output", "-o", help="file to write (default: the stored file name, here)")
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
        settings = Settings()
    except Exception as exc:  # pydantic's message names the setting and the problem
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    studio = None
    try:
        studio = Studio.open(settings)
        return COMMANDS[args.command](studio, args)
    except MediagenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        print(f"error: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if args.verbose:
            log.exception("the traceback")
        else:
            print("(run again with --verbose for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if studio is not None:
            studio.close()


def _emit(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _shown(studio: Studio, job: Any, *, events: bool = False) -> dict[str, Any]:
    return JobOut.of(job, studio.storage, events=events).data()


def _finished(studio: Studio, job: Any) -> int:
    _emit(_shown(studio, job))
    if job.status in (JobStatus.SUCCEEDED, JobStatus.QUEUED, JobStatus.RUNNING):
        return EXIT_OK
    print(f"error: job {job.id} {job.status}: {job.error_message}", file=sys.stderr)
    return EXIT_FAILED


def _image(studio: Studio, args: argparse.Namespace) -> int:
    params = {"size": args.size, "n": args.n, "seed": args.seed}
    return _finished(studio, actions.generate_image(studio, args.prompt, model=args.model, params=params))


def _video(studio: Studio, args: argparse.Namespace) -> int:
    params = {"duration": args.duration, "size": args.size, "seed": args.seed}
    job = actions.submit_video(studio, args.prompt, model=args.model, params=params, webhook_url=args.webhook_url)
    if args.wait:
        job = _wait(studio, job.id)
    return _finished(studio, job)


def _wait(studio: Studio, job_id: str) -> Any:
    worker_id, last = studio.owner_id, None
    while True:
        tick(studio, worker_id=worker_id)
        job = queries.get_job(studio, job_id)
        if (job.status, job.progress) != last:
            print(f"{job.id}: {job.status} {job.progress}%", file=sys.stderr)
            last = (job.status, job.progress)
        if JobStatus(job.status).is_final:
            return job
        time.sleep(min(0.5, studio.settings.poll_interval_s))


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
    if args.action == "rebuild-metrics":
        with studio.db.engine.begin() as connection:
            counted = rollup.rebuild(connection)
        print(f"metrics recounted from {counted} finished job(s); deleted jobs are no longer in them", file=sys.stderr)
        return EXIT_OK
    studio.db.upgrade()  # Studio.open already upgraded; this makes the intent explicit
    print("database is at the latest revision", file=sys.stderr)
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
        raise InvalidInput("id", f"job {job.id} is {job.status} and has no outputs")
    if not 0 <= args.index < len(job.assets):
        raise InvalidInput("index", f"{args.index} is out of range", f"0–{len(job.assets) - 1}")
    asset = job.assets[args.index]
    fmt = args.format or asset.key.rsplit(".", 1)[-1].replace("jpg", "jpeg")
    made = derive(studio.storage, asset, job.kind, fmt)
    target = Path(args.output or made.file_name)
    with target.open("wb") as out:
        written = copy_to(studio.storage, made.key, out)
    _emit(
        {"path": str(target), "bytes": written, "content_type": made.content_type, "url": studio.storage.url(made.key)}
    )
    return EXIT_OK


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
}
