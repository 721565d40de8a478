"""Signed webhooks from the outbox: a loopback receiver that answers 500, times out, redirects or
says 410, and every attempt checked with the `standardwebhooks` package itself."""

from __future__ import annotations

import base64
import http.server
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from standardwebhooks import Webhook

from mediagen.admin import history
from mediagen.config import Settings
from mediagen.db.tables import Job, WebhookAttempt, WebhookDelivery
from mediagen.errors import InvalidInput
from mediagen.jobs import actions, queries
from mediagen.jobs.schema import JobOut
from mediagen.jobs.status import JobStatus
from mediagen.studio import Studio
from mediagen.webhooks.delivery import backoff_s, deliver_due
from mediagen.worker.sweep import tick

from ..conftest import run_to_end
from ..support.servers import free_port

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
ROOT = Path(__file__).resolve().parents[2]
SMALL = {"size": "160x96", "duration": 1}


class Receiver:
    """A webhook endpoint on loopback. Each POST takes the next scripted answer: an HTTP status,
    ("sleep", seconds) to outlast our timeout, or ("redirect", status); 200 when the script is empty."""

    def __init__(self) -> None:
        self.script: deque = deque()
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                answer = receiver.script.popleft() if receiver.script else 200
                if isinstance(answer, tuple) and answer[0] == "sleep":
                    time.sleep(answer[1])
                    answer = 200
                if isinstance(answer, tuple) and answer[0] == "redirect":
                    self.send_response(answer[1])
                    self.send_header("location", "/moved")
                else:
                    self.send_response(answer)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/mediagen"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verified(self) -> list[dict]:
        """Every body received, each checked against its own signature headers."""
        return [Webhook(SECRET).verify(body, headers) for _path, headers, body in self.received]

    def ids(self) -> list[str]:
        return [headers["webhook-id"] for _path, headers, _body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.shutdown()


@pytest.fixture
def hooked(tmp_path: Path) -> Iterator[Studio]:
    studio = Studio.open(
        Settings(
            data_dir=tmp_path / "data",
            public_base_url="http://127.0.0.1:9/cdn",
            poll_interval_s=0.05,
            outbound_allow=["127.0.0.1/32"],
            webhook_secret=SECRET,
            webhook_timeout_s=0.5,
            webhook_retry_base_s=0.05,
        )
    )
    yield studio
    studio.close()


def _finished_video(studio: Studio, url: str) -> Job:
    job = actions.submit_video(studio, "waves", model="local-video", params=SMALL, webhook_url=url)
    return run_to_end(studio, job.id)


def _deliver_until_settled(studio: Studio, limit_s: float = 20) -> list[WebhookDelivery]:
    deadline = time.monotonic() + limit_s
    while True:
        deliver_due(studio, "w")
        with studio.db.read() as session:
            deliveries = list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))
        if all(d.status != "pending" for d in deliveries) or time.monotonic() > deadline:
            return deliveries
        time.sleep(0.05)


def _attempts(studio: Studio, delivery_id: str) -> list[WebhookAttempt]:
    with studio.db.read() as session:
        query = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.id)
        return list(session.scalars(query))


def test_a_finished_job_is_posted_once_signed_with_its_assets(hooked, receiver) -> None:
    job = _finished_video(hooked, receiver.url)
    assert job.status == JobStatus.SUCCEEDED
    [delivery] = _deliver_until_settled(hooked)
    assert (delivery.status, delivery.attempts, delivery.event) == ("delivered", 1, "job.succeeded")
    [message] = receiver.verified()
    assert message["type"] == "job.succeeded"
    data = message["data"]
    assert (data["id"], data["status"], data["model"], data["prompt"]) == (job.id, "succeeded", "local-video", "waves")
    assert data["assets"][0]["content_type"] == "video/mp4" and data["assets"][0]["url"].endswith(".mp4")
    assert data["error"] is None and data["created_at"] and data["finished_at"]
    assert receiver.ids() == [delivery.id] and delivery.id.startswith("msg_")
    assert deliver_due(hooked, "w") == {}  # nothing is sent twice


def test_500_and_a_timeout_are_retried_with_the_same_id_until_a_2xx(hooked, receiver) -> None:
    receiver.script.extend([500, ("sleep", 1.0), 503])
    _finished_video(hooked, receiver.url)
    [delivery] = _deliver_until_settled(hooked)
    assert (delivery.status, delivery.attempts) == ("delivered", 4)
    attempts = _attempts(hooked, delivery.id)
    assert [a.status_code for a in attempts] == [500, None, 503, 200]
    assert "ReadTimeout" in (attempts[1].error or "")
    assert len(set(receiver.ids())) == 1 and len(receiver.received) == 4
    assert len(receiver.verified()) == 4  # every attempt carries a valid signature of its own
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert all(gap >= 0.025 for gap in gaps), gaps  # at least half the 0.05 s base: backoff, not a loop


def test_redirects_are_not_followed(hooked, receiver) -> None:
    receiver.script.append(("redirect", 301))
    _finished_video(hooked, receiver.url)
    [delivery] = _deliver_until_settled(hooked)
    first = _attempts(hooked, delivery.id)[0]
    assert (first.status_code, first.error) == (301, "HTTP 301 (redirects are not followed)")
    assert [path for path, _h, _b in receiver.received] == ["/hooks/mediagen"] * 2  # never /moved
    assert delivery.status == "delivered"


def test_410_stops_deliveries_to_that_url(hooked, receiver) -> None:
    receiver.script.append(410)
    _finished_video(hooked, receiver.url)
    _finished_video(hooked, receiver.url)  # two deliveries waiting for the same URL
    deliveries = _deliver_until_settled(hooked)
    assert [d.status for d in deliveries] == ["gone", "gone"]
    assert len(receiver.received) == 1  # the second was never sent
    _finished_video(hooked, receiver.url)
    later = _deliver_until_settled(hooked)[-1]
    assert later.status == "gone" and "410 Gone" in (later.last_error or "")
    assert len(receiver.received) == 1


def test_a_delivery_gives_up_when_the_retry_window_has_passed(hooked, receiver) -> None:
    receiver.script.extend([500] * 5)
    job = _finished_video(hooked, receiver.url)
    with hooked.db.write() as session:  # the job ended two days ago
        session.execute(update(Job).where(Job.id == job.id).values(finished_at=job.finished_at - timedelta(days=2)))
    [delivery] = _deliver_until_settled(hooked)
    assert delivery.status == "failed" and delivery.attempts == 1
    assert delivery.last_error == "HTTP 500; gave up after 1 attempts"


def test_every_final_state_writes_its_delivery(hooked, receiver) -> None:
    canceled = actions.submit_video(hooked, "stop me", model="local-video", params=SMALL, webhook_url=receiver.url)
    actions.cancel_job(hooked, canceled.id)
    late = actions.submit_video(hooked, "too slow", model="local-video", params=SMALL, webhook_url=receiver.url)
    with hooked.db.write() as session:
        session.execute(update(Job).where(Job.id == late.id).values(deadline_at=late.created_at))
    tick(hooked, worker_id="w")
    plain = actions.submit_video(hooked, "no hook", model="local-video", params=SMALL)
    actions.cancel_job(hooked, plain.id)
    _deliver_until_settled(hooked)
    events = {m["data"]["id"]: (m["type"], m["data"]["status"], m["data"]["error"]) for m in receiver.verified()}
    assert events[canceled.id][:2] == ("job.canceled", "canceled")
    assert events[late.id][:2] == ("job.timed_out", "timed_out") and "ran" in events[late.id][2]
    assert plain.id not in events and len(events) == 2


def test_webhook_urls_are_checked_when_the_job_is_submitted(hooked, tmp_path) -> None:
    for url, phrase in [
        ("http://10.0.0.7/hook", "a private address"),
        ("http://169.254.169.254/latest", "a link-local address"),
        ("file:///etc/passwd", "only http and https"),
        ("https://x.example/" + "a" * 2100, "at most 2048"),
    ]:
        with pytest.raises(InvalidInput, match=phrase) as refused:
            actions.submit_video(hooked, "x", model="local-video", params=SMALL, webhook_url=url)
        assert refused.value.field == "webhook_url"
    off = Studio.open(Settings(data_dir=tmp_path / "off", public_base_url="http://127.0.0.1:9/cdn"))
    try:
        with pytest.raises(InvalidInput, match="webhooks are off on this server"):
            actions.submit_video(off, "x", model="local-video", params=SMALL, webhook_url="https://example.com/h")
    finally:
        off.close()
    with hooked.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0  # nothing was created


def test_history_and_job_json_show_deliveries_and_attempts(hooked, receiver) -> None:
    receiver.script.append(500)
    job = _finished_video(hooked, receiver.url + "?token=secret")
    _deliver_until_settled(hooked)
    frame = history.webhook_attempts_frame(hooked, job.id)
    assert list(frame["http_status"]) == [500, 200]
    assert set(frame["delivery"]) == {"delivered"} and set(frame["event"]) == {"job.succeeded"}
    data = JobOut.of(queries.get_job(hooked, job.id), hooked.storage).data()
    assert data["webhook_url"] == receiver.url  # the query string (a token) is not shown
    assert data["webhooks"][0]["status"] == "delivered" and data["webhooks"][0]["attempts"] == 2


def test_cli_video_with_a_webhook(receiver, tmp_path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MEDIAGEN_DATA_DIR": str(tmp_path / "cli"),
        "MEDIAGEN_WEBHOOK_SECRET": SECRET,
        "MEDIAGEN_OUTBOUND_ALLOW": '["127.0.0.1/32"]',
    }
    base = [sys.executable, "-m", "mediagen", "video", "waves", "--duration", "1", "--size", "160x96"]
    done = subprocess.run([*base, "--webhook-url", receiver.url], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["webhook_url"] == receiver.url
    refused = subprocess.run(
        [*base, "--webhook-url", "http://192.168.1.1/h"], capture_output=True, text=True, env=env, timeout=60
    )
    assert refused.returncode == 2
    assert "webhook_url: http://192.168.1.1/h leads to 192.168.1.1, a private address" in refused.stderr


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    for attempts in range(1, 8):
        ceiling = 5.0 * 2 ** (attempts - 1)
        assert all(ceiling / 2 <= backoff_s(5.0, attempts) <= ceiling for _ in range(50))
    assert backoff_s(5.0, 40) <= 3600
