"""The outbound URL guard: only public http(s) addresses, judged after DNS and at every redirect hop,
and the jobs whose downloads it refuses fail with the reason and store nothing."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from mediagen.config import Settings
from mediagen.db.tables import utcnow
from mediagen.errors import ProviderError, RefusedURL
from mediagen.jobs import actions
from mediagen.jobs.status import JobKind, JobStatus
from mediagen.media.ingest import Limits, ingest_outputs
from mediagen.netguard import OutboundGuard, guarded_stream
from mediagen.providers.base import MediaSource

from .conftest import stored_files
from .support.fake_providers import FakeProviders, Reply
from .support.servers import free_port

STRICT = OutboundGuard()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://localhost:8501/cdn/x.png", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.0.10/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:169.254.169.254]/latest/meta-data/", "link-local (inside ::ffff:a9fe:a9fe)"),
        ("http://[::169.254.169.254]/", "link-local (inside ::a9fe:a9fe)"),
        ("http://[2002:a9fe:a9fe::1]/", "link-local (inside 2002:a9fe:a9fe::1)"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fc00::1]/", "private"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 written as a decimal number
        ("http://0x7f000001/", "loopback"),  # ... as hex
        ("http://0177.0.0.1/", "loopback"),  # ... with an octal first part
        ("http://100.64.0.7/", "shared (CGNAT)"),
        ("http://224.0.0.251/", "multicast"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://240.0.0.1/", "reserved"),
    ],
)
def test_internal_addresses_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(RefusedURL, match="only public addresses are allowed") as refused:
        STRICT.check_url(url)
    assert f"a {reason} address" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("file:///etc/passwd", "only http and https URLs are allowed, not file"),
        ("ftp://example.com/x", "only http and https URLs are allowed, not ftp"),
        ("gopher://127.0.0.1:6379/_INFO", "only http and https URLs are allowed, not gopher"),
        ("http:///nohost", "the URL has no host"),
        ("http://example.com:99999/", "the port is not a number from 0 to 65535"),
        ("https://no-such-host.invalid/x", "does not resolve"),
    ],
)
def test_other_bad_urls_are_refused_clearly(url: str, phrase: str) -> None:
    with pytest.raises(RefusedURL, match=phrase):
        STRICT.check_url(url)


def test_public_addresses_pass_and_the_allow_list_makes_exceptions() -> None:
    STRICT.check_url("https://93.184.215.14/video.mp4?sig=abc")
    STRICT.check_url("http://[2606:4700::6810:84e5]/")
    allowing = OutboundGuard.from_entries(["127.0.0.1/32", "fake.internal"])
    allowing.check_url("http://127.0.0.1:9000/x")
    with pytest.raises(RefusedURL, match=r"127\.0\.0\.2"):
        allowing.check_url("http://127.0.0.2:9000/x")
    # A name on the list passes whatever it resolves to: the operator vouched for it.
    vouched = OutboundGuard(frozenset({"fake.internal"}), (), resolve=_dns({"fake.internal": "10.0.0.9"}))
    vouched.check_url("http://fake.internal/x")


def test_every_address_a_name_resolves_to_must_be_public() -> None:
    """A name with one public and one internal answer is refused: the connection may pick either."""
    split = OutboundGuard(resolve=_dns({"media.example.com": ["93.184.215.14", "10.0.0.5"]}))
    with pytest.raises(RefusedURL, match=r"leads to 10\.0\.0\.5, a private address"):
        split.check_url("https://media.example.com/x.mp4")


def test_messages_never_show_credentials_or_query_strings() -> None:
    with pytest.raises(RefusedURL) as refused:
        STRICT.check_url("http://user:hunter2@127.0.0.1:8080/x.png?X-Amz-Signature=secret")
    assert "hunter2" not in str(refused.value) and "secret" not in str(refused.value)
    assert str(refused.value).startswith("http://127.0.0.1:8080/x.png leads to 127.0.0.1")


def test_bad_allow_list_entries_are_a_settings_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="'http://x' is neither a host name nor an IP address or CIDR"):
        Settings(data_dir=tmp_path, outbound_allow=["http://x"])


# -- redirects --------------------------------------------------------------------------------
class _Redirector(http.server.BaseHTTPRequestHandler):
    """/go?to=URL answers 302 to URL; /hops/N redirects N+1 times; anything else is a small body."""

    def do_GET(self) -> None:
        if self.path.startswith("/go?to="):
            self._redirect(self.path.split("=", 1)[1])
        elif self.path.startswith("/hops/"):
            left = int(self.path.rsplit("/", 1)[1])
            self._redirect(f"/hops/{left - 1}" if left else "/done")
        else:
            body = f"landed at {self.path}; auth={self.headers.get('authorization')}".encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def _redirect(self, to: str) -> None:
        self.send_response(302)
        self.send_header("location", to)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def redirector() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Redirector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _fetch(guard: OutboundGuard, url: str, **kwargs) -> str:
    with httpx.Client() as client, guarded_stream(client, "GET", url, guard, **kwargs) as response:
        return response.read().decode()


def test_a_public_looking_url_that_redirects_inside_is_refused(redirector: int) -> None:
    """The first hop is vouched for (here `localhost` stands in for a public CDN name); the hop it
    redirects to is judged on its own and refused."""
    guard = OutboundGuard.from_entries(["localhost"])
    for target in ("http://169.254.169.254/latest/meta-data/", f"http://127.0.0.1:{redirector}/internal"):
        with pytest.raises(RefusedURL, match="only public addresses are allowed"):
            _fetch(guard, f"http://localhost:{redirector}/go?to={target}")
    assert _fetch(guard, f"http://localhost:{redirector}/go?to=/fine").startswith("landed at /fine")


def test_redirects_are_bounded_and_credentials_stay_with_their_host(redirector: int) -> None:
    guard = OutboundGuard.from_entries(["localhost", "127.0.0.1/32"])
    assert _fetch(guard, f"http://localhost:{redirector}/hops/4").startswith("landed at /done")  # 5 redirects
    with pytest.raises(RefusedURL, match="more than 5 redirects"):
        _fetch(guard, f"http://localhost:{redirector}/hops/5")
    auth = {"authorization": "Bearer provider-key"}
    same_host = _fetch(guard, f"http://localhost:{redirector}/go?to=/a", headers=auth)
    assert same_host.endswith("auth=Bearer provider-key")
    other_host = _fetch(guard, f"http://localhost:{redirector}/go?to=http://127.0.0.1:{redirector}/b", headers=auth)
    assert other_host == "landed at /b; auth=None"


def test_a_dns_answer_that_changes_before_connecting_is_caught(redirector: int) -> None:
    """Rebinding: the check's lookup says public, the connection lands on loopback. The address the
    socket actually reached is judged before any body is read."""
    rebinding = OutboundGuard(resolve=_dns({"localhost": "93.184.215.14"}))
    with pytest.raises(RefusedURL, match=r"leads to 127\.0\.0\.1, a loopback address"):
        _fetch(rebinding, f"http://localhost:{redirector}/secret")


def test_a_rebinding_answer_is_refused_before_the_request_is_sent() -> None:
    """The connection is judged as soon as it is made: a POST never reaches the rebound address."""
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.append(chunk)

    reader = threading.Thread(target=serve, daemon=True)
    reader.start()
    rebinding = OutboundGuard(resolve=_dns({"localhost": "93.184.215.14"}))
    url = f"http://localhost:{listener.getsockname()[1]}/hooks"
    try:
        with (
            httpx.Client() as client,
            pytest.raises(RefusedURL, match=r"leads to 127\.0\.0\.1, a loopback address"),
            guarded_stream(client, "POST", url, rebinding, content=b"signed payload"),
        ):
            pass
        reader.join(timeout=5)
    finally:
        listener.close()
    assert not reader.is_alive() and received == []


@pytest.mark.parametrize("host", ["0177.0.0.1", "2130706433", "0x7f.1", "127.1"])
def test_ipv4_is_only_accepted_written_plainly_even_when_allowed(host: str) -> None:
    """Parsers disagree on these spellings (httpx refuses them, getaddrinfo reads them as C does)."""
    allowing = OutboundGuard.from_entries(["127.0.0.1/32"])
    with pytest.raises(RefusedURL) as refused:
        allowing.check_url(f"http://{host}:9000/x")
    assert f"the host {host} is an unusual way to write 127.0.0.1, a loopback address; write it as 127.0.0.1" in str(
        refused.value
    )


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("http://127.0.0.1:9/a\nb", "contains a control character (U+000A) at position 21"),
        ("http://127.0.0.1:9/a b", "contains whitespace (U+0020) at position 21"),
        ("http://127.0.0.1:9/\u200b", "contains an invisible formatting character (U+200B) at position 20"),
        ("http://127.0.0.1:9/\ud800", "contains a lone surrogate (U+D800) at position 20"),
        ("http://[::1/x", "is not a valid URL (Invalid IPv6 URL)"),
        ("http://exa_mple..com/x", "the host exa_mple..com does not resolve (encoding with 'idna' codec failed"),
    ],
)
def test_urls_that_cannot_be_sent_as_they_are_are_refused(url: str, phrase: str) -> None:
    with pytest.raises(RefusedURL) as refused:
        OutboundGuard.from_entries(["127.0.0.1/32"]).check_url(url)
    assert phrase in str(refused.value) and not refused.value.transient


# -- downloads in jobs ------------------------------------------------------------------------
def test_a_refused_download_fails_clearly_and_stores_nothing(settings: Settings) -> None:
    from mediagen.storage import make_storage

    storage = make_storage(settings)
    with pytest.raises(ProviderError, match=r"download refused: http://169\.254\.169\.254/latest") as refused:
        ingest_outputs(
            storage,
            [MediaSource(url="http://169.254.169.254/latest/meta-data/iam")],
            kind=JobKind.IMAGE,
            job_id="j1",
            created_at=utcnow(),
            limits=Limits(max_bytes=1 << 20, deadline_s=10),
        )
    assert refused.value.code == "url_refused" and not refused.value.retryable
    assert [p for p in settings.media_dir.rglob("*") if p.is_file()] == []


def test_a_provider_redirecting_its_download_inside_fails_the_job(tmp_path, monkeypatch) -> None:
    with FakeProviders() as fake:
        monkeypatch.setenv("OPENAI_API_KEY", fake.OPENAI_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base)
        # The fake's own address is allowed, as a real provider's public CDN would be; where it
        # redirects to is not.
        studio_settings = Settings(
            data_dir=tmp_path / "data", public_base_url="http://127.0.0.1:9/cdn", outbound_allow=["127.0.0.1/32"]
        )
        fake.script("media", Reply(302, headers={"location": "http://10.20.30.40/bucket/secret.png"}, body=b""))
        from mediagen.studio import Studio

        studio = Studio.open(studio_settings)
        try:
            job = actions.generate_image(studio, "x", model="dall-e-2")
            assert (job.status, job.error_code) == (JobStatus.FAILED, "url_refused")
            assert "leads to 10.20.30.40, a private address" in job.error_message
            assert stored_files(studio) == []
        finally:
            studio.close()


def _dns(table: dict[str, str | list[str]]):
    """A getaddrinfo stand-in answering from ``table``."""

    def resolve(host: str, port: int, **_kwargs: object) -> list[tuple]:
        answers = table[host]
        return [
            (None, None, None, "", (address, port)) for address in ([answers] if isinstance(answers, str) else answers)
        ]

    return functools.partial(resolve)
