"""A webhook endpoint on loopback that records every POST and checks each with the
`standardwebhooks` package itself."""

from __future__ import annotations

import http.server
import threading
import time
from collections import deque
from typing import Any

from standardwebhooks import Webhook

from .servers import free_port


class Receiver:
    """Each POST takes the next scripted answer: an HTTP status, ("sleep", seconds) to outlast the
    sender's timeout, or ("redirect", status); 200 when the script is empty."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.script: deque[Any] = deque()
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
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

    def verified(self) -> list[dict[str, Any]]:
        """Every body received, each checked against its own signature headers."""
        with self._lock:
            received = list(self.received)
        return [Webhook(self.secret).verify(body, headers) for _path, headers, body in received]

    def ids(self) -> list[str]:
        with self._lock:
            return [headers["webhook-id"] for _path, headers, _body in self.received]

    def by_id(self) -> dict[str, dict[str, Any]]:
        """What a receiver that deduplicates by `webhook-id` keeps: one verified message per id."""
        with self._lock:
            received = list(self.received)
        signer = Webhook(self.secret)
        return {headers["webhook-id"]: signer.verify(body, headers) for _path, headers, body in received}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
