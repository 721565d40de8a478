"""Signed webhooks from the outbox: a loopback receiver that answers 500, times out, redirects or
says 410, and every attempt checked with the `standardwebhooks` package itself."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

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
from ..support.webhook_receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
ROOT = Path(__file__).resolve().parents[2]
SMALL = {"size": "160x96", "duration": 1}
URL_ALLOWED = (
    "an http or https URL with a host that resolves to public addresses, at most 2048 characters, "
    "without whitespace or control characters"
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver(SECRET)
    yield running
    running.close()


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


# -- URLs that cannot be sent, attempts that raise, a receiver that resets -----------------------
@pytest.mark.parametrize(
    ("tail", "phrase"),
    [
        ("/hooks\nX-Injected: 1", "a control character (U+000A) at position"),
        ("/hooks\r\nX-Injected: 1", "a control character (U+000D) at position"),
        ("/a\tb", "a control character (U+0009) at position"),
        ("/a\x00b", "a control character (U+0000) at position"),
        ("/a\x7fb", "a control character (U+007F) at position"),
        ("/a b", "whitespace (U+0020) at position"),
        ("/a\u00a0b", "whitespace (U+00A0) at position"),
        ("/\u202egpj.exe", "an invisible formatting character (U+202E) at position"),
    ],
)
def test_webhook_urls_with_control_characters_or_whitespace_are_refused_at_submit(hooked, tail, phrase) -> None:
    """The host is allowed (loopback is on the test's allow list), so only the characters are wrong."""
    with pytest.raises(InvalidInput, match=re.escape(phrase)) as refused:
        actions.submit_video(hooked, "x", model="local-video", params=SMALL, webhook_url="http://127.0.0.1:9" + tail)
    assert refused.value.field == "webhook_url"
    assert refused.value.allowed == URL_ALLOWED
    with hooked.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("http://[::1/hook", "is not a valid URL"),
        ("127.0.0.1:9/hook", "only http and https URLs are allowed"),
        ("http://:9/hook", "the URL has no host"),
        ("http://0177.0.0.1/hook", "a loopback address"),
        ("http://127.0.0.1:9\u200b/hook", "an invisible formatting character (U+200B) at position 19"),
    ],
)
def test_webhook_urls_that_are_not_urls_are_refused_at_submit(hooked, url, phrase) -> None:
    with pytest.raises(InvalidInput, match=re.escape(phrase)) as refused:
        actions.submit_video(hooked, "x", model="local-video", params=SMALL, webhook_url=url)
    assert refused.value.field == "webhook_url" and refused.value.allowed == URL_ALLOWED


def test_leading_and_trailing_blanks_of_a_pasted_webhook_url_are_dropped(hooked, receiver) -> None:
    job = actions.submit_video(hooked, "x", model="local-video", params=SMALL, webhook_url=f" \t{receiver.url}\n")
    assert job.webhook_url == receiver.url


def test_the_http_api_refuses_a_webhook_url_with_a_control_character(hooked) -> None:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from mediagen import server
    from mediagen.api import apps

    server.use(hooked)
    try:
        client = TestClient(Starlette(routes=apps.build(lambda: False)), client=("127.0.0.1", 40000))
        body = {"prompt": "waves", "model": "local-video", "duration": 1, "size": "160x96"}
        answer = client.post("/api/videos/generate", json={**body, "webhook_url": "http://127.0.0.1:9/a\tb"})
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["param"], error["code"]) == ("webhook_url", "invalid_input")
        assert "a control character (U+0009) at position 21" in error["message"]
        assert "http or https" in error["message"]
    finally:
        server.use(None)
    with hooked.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_the_video_studio_page_refuses_a_webhook_url_with_a_control_character(hooked) -> None:
    from streamlit.testing.v1 import AppTest

    from mediagen import server

    server.use(hooked)
    try:
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        app.run()
        app.switch_page("pages/video_studio.py").run()
        app.text_area(key="video-prompt").input("slow waves")
        app.text_input(key="video-webhook").input("http://127.0.0.1:9/a\x00b")
        app.button(key="video-generate").click().run()
        assert not app.exception, app.exception
        # The page escapes Markdown in what it shows (a user's text is shown as text); compare
        # what the reader sees.
        [shown] = [re.sub(r"\\(.)", r"\1", e.value) for e in app.error]
        assert "webhook" in shown and "U+0000" in shown and "http or https" in shown
    finally:
        server.use(None)
    with hooked.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_cli_refuses_a_webhook_url_with_a_control_character(tmp_path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MEDIAGEN_DATA_DIR": str(tmp_path / "cli"),
        "MEDIAGEN_WEBHOOK_SECRET": SECRET,
        "MEDIAGEN_OUTBOUND_ALLOW": '["127.0.0.1/32"]',
    }
    command = [sys.executable, "-m", "mediagen", "video", "waves", "--duration", "1", "--size", "160x96"]
    command += ["--webhook-url", "http://127.0.0.1:9/a\tb"]
    refused = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert "webhook_url: contains a control character (U+0009) at position 21" in refused.stderr
    assert refused.stdout == ""


def _make_due_first(studio: Studio, delivery_id: str) -> None:
    """Put the delivery at the head of the next batch (the batch is ordered by due time)."""
    with studio.db.write() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC))
        )


def _delivery_of(studio: Studio, job_id: str) -> WebhookDelivery:
    with studio.db.read() as session:
        return session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)).one()


def test_an_outbox_row_whose_url_cannot_be_sent_fails_with_its_reason_and_the_batch_goes_on(hooked, receiver) -> None:
    """A row written before URLs were checked at submit: failed for good, at once, saying why; the
    delivery after it in the same batch is still sent."""
    stuck, fine = (_finished_video(hooked, receiver.url) for _ in range(2))
    bad_url = receiver.url + "\x00x"
    with hooked.db.write() as session:
        session.execute(update(Job).where(Job.id == stuck.id).values(webhook_url=bad_url))
        session.execute(update(WebhookDelivery).where(WebhookDelivery.job_id == stuck.id).values(url=bad_url))
    _make_due_first(hooked, _delivery_of(hooked, stuck.id).id)

    assert deliver_due(hooked, "w") == {"failed": 1, "delivered": 1}
    failed = _delivery_of(hooked, stuck.id)
    assert (failed.status, failed.attempts, failed.next_attempt_at) == ("failed", 1, None)
    assert "a control character (U+0000)" in (failed.last_error or "")
    assert _delivery_of(hooked, fine.id).status == "delivered"
    assert [m["data"]["id"] for m in receiver.verified()] == [fine.id]
    assert deliver_due(hooked, "w") == {}  # never tried again


def test_a_host_that_does_not_resolve_now_is_retried_not_failed_for_good(hooked, receiver) -> None:
    """DNS may answer later (an outage, a name not yet published): that attempt's outcome, retried."""
    job = _finished_video(hooked, receiver.url)
    with hooked.db.write() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.job_id == job.id)
            .values(url="http://no-such-host.invalid/hooks")
        )
    assert deliver_due(hooked, "w") == {"retrying": 1}
    waiting = _delivery_of(hooked, job.id)
    assert (waiting.status, waiting.attempts, waiting.lease_owner) == ("pending", 1, None)
    assert "the host no-such-host.invalid does not resolve" in (waiting.last_error or "")


def test_an_attempt_that_raises_is_that_attempts_failure_retried_then_given_up(hooked, receiver, monkeypatch) -> None:
    """Anything one attempt raises (here S3 presigning the payload's asset URLs without credentials)
    is recorded on that delivery with backoff; the rest of the batch is sent in the same run."""
    from botocore.exceptions import NoCredentialsError

    broken, fine = (_finished_video(hooked, receiver.url) for _ in range(2))
    broken_keys = {a.key for a in broken.assets} | {a.thumbnail_key for a in broken.assets}
    real_url = hooked.storage.url

    def url(key: str) -> str:
        if key in broken_keys:
            raise NoCredentialsError()
        return real_url(key)

    monkeypatch.setattr(hooked.storage, "url", url)
    _make_due_first(hooked, _delivery_of(hooked, broken.id).id)

    assert deliver_due(hooked, "w") == {"retrying": 1, "delivered": 1}
    waiting = _delivery_of(hooked, broken.id)
    assert (waiting.status, waiting.attempts, waiting.lease_owner) == ("pending", 1, None)
    assert waiting.last_error == "NoCredentialsError: Unable to locate credentials"
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > waiting.created_at  # backoff
    [attempt] = _attempts(hooked, waiting.id)
    assert (attempt.status_code, attempt.error) == (None, "NoCredentialsError: Unable to locate credentials")
    assert [m["data"]["id"] for m in receiver.verified()] == [fine.id]

    with hooked.db.write() as session:  # the job ended two days ago: the retry window is over
        session.execute(
            update(Job).where(Job.id == broken.id).values(finished_at=broken.finished_at - timedelta(days=2))
        )
    _make_due_first(hooked, waiting.id)
    assert deliver_due(hooked, "w") == {"failed": 1}
    given_up = _delivery_of(hooked, broken.id)
    assert given_up.status == "failed" and given_up.next_attempt_at is None
    assert given_up.last_error == "NoCredentialsError: Unable to locate credentials; gave up after 2 attempts"


class ResettingReceiver:
    """A raw socket endpoint that reads each request, answers `HTTP/1.1 200` and then closes with
    RST (SO_LINGER 0) instead of a FIN: the answer arrives, then the connection breaks."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hooks/resetting"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed by the fixture
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.fixture
def resetting() -> Iterator[ResettingReceiver]:
    running = ResettingReceiver()
    yield running
    running.sock.close()


def test_a_receiver_that_resets_right_after_its_200_is_delivered_once(hooked, resetting) -> None:
    _finished_video(hooked, resetting.url)
    [delivery] = _deliver_until_settled(hooked)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert len(resetting.requests) == 1
    assert deliver_due(hooked, "w") == {}  # not sent again
    assert len(resetting.requests) == 1
