"""The one HTTP mechanism every remote provider uses: an httpx client with timeouts, a bounded
retry policy with backoff and jitter (tenacity), the provider's own pacing hints, and errors a
user can act on.

What is retried, and why:
- A request that never reached the provider (connect errors) is always safe to send again.
- An answer that says "not now" (408, 409, 429 rate limit, 5xx) is retried: the provider refused
  the request, so resending cannot do the work twice. ``Retry-After`` / ``retry-after-ms`` set the
  wait; a wait too long to sleep through becomes a retryable error a worker schedules.
- A create call that timed out *after* it was sent has an unknown outcome: resending could pay
  twice, so it fails with ``outcome_unknown`` and the user decides.
- 429 "out of quota", auth failures and bad requests are final.
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from ..config import Settings
from ..errors import ProviderError
from .settings import RemoteSettings

log = logging.getLogger(__name__)

MAX_INLINE_WAIT_S = 20.0  # longer waits are handed to the worker instead of blocking a thread
QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "quota_exceeded"})
POLICY_CODES = frozenset({"content_policy_violation", "moderation_blocked", "content_filter", "safety"})
THREADS_PER_CLIENT = 8
_backoff = wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5)


@dataclass(frozen=True)
class ErrorDetail:
    """What a provider said in an error body."""

    message: str
    code: str | None = None
    param: str | None = None


ErrorReader = Callable[[httpx.Response], ErrorDetail]


def retry_after_s(response: httpx.Response) -> float | None:
    """The provider's requested wait: ``retry-after-ms`` first (OpenAI), then ``retry-after``
    in seconds or as an HTTP date."""
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        if "retry-after" in headers:
            value = headers["retry-after"]
            try:
                return max(0.0, float(value))
            except ValueError:
                parsed = email.utils.parsedate_to_datetime(value)
                return max(0.0, parsed.timestamp() - time.time())
    except (ValueError, TypeError):
        return None
    return None


class ProviderHttp:
    def __init__(
        self,
        *,
        label: str,
        key_env: str,
        base_url: str,
        api_key: str,
        read_error: ErrorReader,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
        connections: int = 20,
    ) -> None:
        self.label = label
        self.key_env = key_env
        self.base_url = base_url.rstrip("/")
        self._secret = api_key
        self._read_error = read_error
        self._max_retries = max_retries
        # Several clients, each shared by a few threads: one httpx pool shared by dozens of polling
        # threads spends more CPU finding a free connection than sending the request (its
        # bookkeeping grows with the pool), measured at 128 threads: 207 vs 1,132 requests/s.
        ssl_context = httpx.create_ssl_context()  # loaded once (~15 ms), not once per client
        shards = max(1, math.ceil(connections / THREADS_PER_CLIENT))
        self._clients = [
            httpx.Client(
                headers={"Authorization": f"Bearer {api_key}", "User-Agent": "mediagen/0.1"},
                timeout=httpx.Timeout(timeout_s, connect=10.0),
                follow_redirects=False,
                transport=transport,
                verify=ssl_context,
                limits=httpx.Limits(max_connections=connections, max_keepalive_connections=THREADS_PER_CLIENT),
            )
            for _ in range(shards)
        ]
        self._next_shard = itertools.count()
        self._thread = threading.local()
        # Pacing: after a rate limit, every call to this provider waits until the window passes.
        self._quiet_until = 0.0
        self._pace_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        label: str,
        key_env: str,
        base_url: str,
        api_key: SecretStr | None,
        read_error: ErrorReader,
        transport: httpx.BaseTransport | None = None,
        min_timeout_s: float = 0.0,
    ) -> ProviderHttp:
        """A client with the shared timeout and retry settings; ``min_timeout_s`` for APIs that
        hold a request open on purpose."""
        if api_key is None:
            raise ValueError(f"{label} needs {key_env}")
        return cls(
            label=label,
            key_env=key_env,
            base_url=base_url,
            api_key=api_key.get_secret_value(),
            read_error=read_error,
            timeout_s=max(settings.provider_timeout_s, min_timeout_s),
            max_retries=settings.provider_max_retries,
            transport=transport,
            connections=settings.poll_concurrency + settings.download_concurrency + 4,  # 4: the web app's own calls
        )

    @property
    def auth_headers(self) -> dict[str, str]:
        """For downloads through ingest (some content endpoints need the bearer header)."""
        return {"Authorization": f"Bearer {self._secret}"}

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def call(self, method: str, path: str, *, creates: bool = False, **kwargs: Any) -> httpx.Response:
        """Send a request; return a 2xx response or raise ``ProviderError``."""
        retrying = Retrying(
            stop=stop_after_attempt(self._max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(self._worth_retrying),
            reraise=True,
        )
        return retrying(self._once, method, path, creates, kwargs)

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def scrub(self, text: str) -> str:
        """Remove the secret from any text we might show or log (some APIs echo keys)."""
        return text.replace(self._secret, "***") if self._secret else text

    # -- internals --------------------------------------------------------------------------
    def _once(self, method: str, path: str, creates: bool, kwargs: dict[str, Any]) -> httpx.Response:
        self._pace()
        try:
            response = self._client().request(method, self.url(path), **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ProviderError(
                f"{self.label} could not be reached ({type(exc).__name__})", code="network", retryable=True
            ) from None
        except httpx.TransportError as exc:
            if creates:
                raise ProviderError(
                    f"{self.label} did not answer the create call in time ({type(exc).__name__}); it may or "
                    "may not have accepted the task, so it was not sent again. Check the provider, then "
                    "retry if needed.",
                    code="outcome_unknown",
                ) from None
            raise ProviderError(
                f"{self.label} connection failed ({type(exc).__name__})", code="network", retryable=True
            ) from None
        if response.is_success:
            return response
        raise self.error(response)

    def _client(self) -> httpx.Client:
        """This thread's client: threads are dealt round-robin to the shards on first use."""
        shard = getattr(self._thread, "shard", None)
        if shard is None:
            shard = self._thread.shard = next(self._next_shard) % len(self._clients)
        return self._clients[shard]

    def error(self, response: httpx.Response) -> ProviderError:
        """Classify a non-2xx answer into an error a user can act on."""
        status = response.status_code
        try:
            detail = self._read_error(response)
        except Exception:  # a body we cannot parse still gets a useful message
            detail = ErrorDetail(response.text[:300] or response.reason_phrase)
        message = self.scrub(detail.message)
        wait = retry_after_s(response)
        if status in (401, 403):
            return ProviderError(f"{self.key_env} was rejected by {self.label}: {message}", code="auth")
        if status == 429:
            if detail.code in QUOTA_CODES or "quota" in message.lower():
                return ProviderError(f"{self.label} quota exhausted: {message}", code="quota")
            self._hold_off(wait)
            return ProviderError(
                f"{self.label} rate limit: {message}", code="rate_limited", retryable=True, retry_after_s=wait
            )
        if status in (408, 409) or status >= 500:
            return ProviderError(
                f"{self.label} server error {status}: {message}",
                code="server_error",
                retryable=True,
                retry_after_s=wait,
            )
        if detail.code in POLICY_CODES:
            return ProviderError(f"{self.label} content policy: {message}", code="content_policy")
        field = f" (field: {detail.param})" if detail.param else ""
        return ProviderError(f"{self.label} refused the request: {message}{field}", code="bad_request")

    def _worth_retrying(self, exc: BaseException) -> bool:
        if not isinstance(exc, ProviderError) or not exc.retryable:
            return False
        return exc.retry_after_s is None or exc.retry_after_s <= MAX_INLINE_WAIT_S

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ProviderError) and exc.retry_after_s is not None:
            return exc.retry_after_s
        return float(_backoff(state))

    def _hold_off(self, wait: float | None) -> None:
        with self._pace_lock:
            self._quiet_until = max(self._quiet_until, time.monotonic() + min(wait or 1.0, MAX_INLINE_WAIT_S))

    def _pace(self) -> None:
        with self._pace_lock:
            delay = self._quiet_until - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def json_or_error(http: ProviderHttp, response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 2xx answer, or a clear error if the provider sent something else."""
    try:
        data = response.json()
    except ValueError:
        raise ProviderError(
            f"{http.label} answered with something that is not JSON (HTTP {response.status_code})",
            code="malformed_response",
        ) from None
    if not isinstance(data, dict):
        raise ProviderError(f"{http.label} answered with unexpected JSON", code="malformed_response")
    return data


class RemoteProvider:
    """What every provider reached over HTTP shares: one ``ProviderHttp`` built from the provider's
    own settings (key, base URL) and the studio's (timeouts, retries, concurrency), and closing it.
    A subclass names itself (``label``), reads its error bodies (``read_error``) and speaks its API."""

    label: ClassVar[str]
    min_timeout_s: ClassVar[float] = 0.0  # for APIs that hold a request open on purpose

    def __init__(self, own: RemoteSettings, studio: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self.own, self.studio_settings = own, studio
        self.http = ProviderHttp.from_settings(
            studio,
            label=self.label,
            key_env=own.key_variable(),
            base_url=own.base_url,
            api_key=own.api_key,
            read_error=self.read_error,
            transport=transport,
            min_timeout_s=self.min_timeout_s,
        )

    @staticmethod
    def read_error(response: httpx.Response) -> ErrorDetail:
        raise NotImplementedError

    def close(self) -> None:
        self.http.close()
