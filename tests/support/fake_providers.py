"""A loopback server that speaks the OpenAI, MiniMax and Replicate APIs, for tests and benchmarks.

It serves real media bytes and can be scripted per test: queued one-shot replies per route
(errors in 200 bodies, 429 with Retry-After, 5xx bursts, slow answers), the status sequence each
poll walks through, non-media or truncated downloads, and download URLs that expire. The real
clients are pointed at it through their base-URL settings; nothing of ours is mocked.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import tempfile
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from mediagen.providers.local import encode_mp4
from mediagen.providers.local_art import render_png


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    truncate: bool = False  # media only: promise every byte, send half, then hang up
    # Media only: send the body in this many pieces with ``chunk_delay_s`` before each piece
    # after the first (a slow download a test can interrupt; ``Recorded.sent`` shows how far).
    chunks: int = 1
    chunk_delay_s: float = 0.0


@dataclass(frozen=True)
class RecordedFile:
    """A file part of a multipart request, as the client sent it."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class Recorded:
    route: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any | None
    form: dict[str, str] | None
    body: bytes
    at: float = field(default_factory=time.time)  # when the request arrived (wall clock)
    sent: int = 0  # bytes of a throttled response body handed to the server so far
    answered_at: float | None = None  # when the answer (its status and headers) was handed to the server
    peer: tuple[str, int] | None = None  # the client's address and port: one port per connection
    files: dict[str, RecordedFile] = field(default_factory=dict)  # multipart file parts by field name


@cache
def _media() -> tuple[bytes, bytes]:
    png = render_png("fake provider", 1, 256, 256)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "fake.mp4"
        encode_mp4(target, "fake provider", 1, 160, 96, 12)
        return png, target.read_bytes()


# Which key each provider's routes demand, by the prefix of the route name.
_KEY_ATTRS = {"openai": "OPENAI_KEY", "minimax": "MINIMAX_KEY", "replicate": "REPLICATE_TOKEN"}


def _hex() -> str:
    return secrets.token_hex(6)


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakeProviders:
    OPENAI_KEY = "sk-test-openai"
    MINIMAX_KEY = "mm-test-key"
    REPLICATE_TOKEN = "r8-test-token"

    def __init__(self) -> None:
        self.png, self.mp4 = _media()
        self.image_output: bytes | None = None
        self.video_output: bytes | None = None
        self.media_ttl_s = 3600.0
        self.openai_video_steps: list[tuple[str, int]] = [
            ("queued", 0),
            ("in_progress", 40),
            ("completed", 100),
        ]
        self.minimax_steps = ["Preparing", "Queueing", "Processing", "Success"]
        self.replicate_steps = ["starting", "processing", "succeeded"]
        self.replicate_video_models = {"fake/video-model"}  # besides any model whose name says "video"
        self.requests: list[Recorded] = []
        # A delay before every answer on a route (seconds), for replies no script covers: a
        # provider that is slow across the board rather than once.
        self.route_delay_s: dict[str, float] = {}
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._tasks: dict[str, dict[str, Any]] = {}  # task id -> what was asked, and poll count
        self._media_links: dict[str, tuple[str, float]] = {}  # token -> (kind, issued at)
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> FakeProviders:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="off", http=_NoDelayH11)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            assert self._thread is not None
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeProviders:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def openai_base(self) -> str:
        return f"{self.base_url}/openai/v1"

    @property
    def minimax_base(self) -> str:
        return f"{self.base_url}/minimax"

    @property
    def replicate_base(self) -> str:
        return f"{self.base_url}/replicate"

    def environment(self) -> dict[str, str]:
        """The variables that point every real client at this fake, with Replicate's test models."""
        return {
            "OPENAI_API_KEY": self.OPENAI_KEY,
            "OPENAI_BASE_URL": self.openai_base,
            "MINIMAX_API_KEY": self.MINIMAX_KEY,
            "MINIMAX_BASE_URL": self.minimax_base,
            "REPLICATE_API_TOKEN": self.REPLICATE_TOKEN,
            "REPLICATE_BASE_URL": self.replicate_base,
            "MEDIAGEN_REPLICATE_IMAGE_MODELS": '["fake/image-model"]',
            "MEDIAGEN_REPLICATE_VIDEO_MODELS": '["fake/video-model"]',
            "MEDIAGEN_OUTBOUND_ALLOW": '["127.0.0.1/32"]',  # the fake stands in for public hosts
        }

    # -- scripting --------------------------------------------------------------------------
    def script(self, route: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[route].extend(replies)

    def calls(self, route: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.route == route]

    def media_url(self, kind: str) -> str:
        token = _hex()
        with self._lock:
            self._media_links[token] = (kind, time.monotonic())
        return f"{self.base_url}/media/{token}"

    # -- the app ----------------------------------------------------------------------------
    def _app(self) -> Starlette:
        oa, mm, rp = "/openai/v1", "/minimax/v1", "/replicate/v1"
        routes = [
            ("openai.images", "POST", f"{oa}/images/generations", self._openai_images),
            ("openai.images.edits", "POST", f"{oa}/images/edits", self._openai_edits),
            ("openai.videos.create", "POST", f"{oa}/videos", self._openai_create),
            ("openai.videos.get", "GET", f"{oa}/videos/{{id}}", self._openai_get),
            ("openai.videos.delete", "DELETE", f"{oa}/videos/{{id}}", self._openai_delete),
            ("openai.videos.content", "GET", f"{oa}/videos/{{id}}/content", self._openai_content),
            ("minimax.create", "POST", f"{mm}/video_generation", self._minimax_create),
            ("minimax.query", "GET", f"{mm}/query/video_generation", self._minimax_query),
            ("minimax.files", "GET", f"{mm}/files/retrieve", self._minimax_files),
            ("replicate.create", "POST", f"{rp}/models/{{owner}}/{{name}}/predictions", self._replicate_create),
            ("replicate.get", "GET", f"{rp}/predictions/{{id}}", self._replicate_get),
            ("replicate.cancel", "POST", f"{rp}/predictions/{{id}}/cancel", self._replicate_cancel),
            ("replicate.files", "POST", f"{rp}/files", self._replicate_upload),
            ("media", "GET", "/media/{token}", self._media_download),  # no auth: signed-URL style
        ]
        return Starlette(
            routes=[
                Route(path, self._endpoint(name, handler), methods=[method]) for name, method, path, handler in routes
            ]
        )

    def _endpoint(self, route: str, handler: Any) -> Any:
        key_attr = _KEY_ATTRS.get(route.split(".")[0])

        async def endpoint(request: Request) -> Response:
            recorded = await self._record(route, request)
            response = await answer(request, recorded)
            recorded.answered_at = time.time()
            return response

        async def answer(request: Request, recorded: Recorded) -> Response:
            with self._lock:
                scripted = self._scripts[route].popleft() if self._scripts[route] else None
            delay = scripted.delay_s if scripted else self.route_delay_s.get(route, 0.0)
            if delay:
                await asyncio.sleep(delay)
            # Keys are read at request time so a test can change what the fake accepts.
            if key_attr and request.headers.get("authorization") != f"Bearer {getattr(self, key_attr)}":
                return self._unauthorized(route)
            if scripted and (scripted.json is not None or scripted.body is not None):
                if scripted.json is not None:
                    return JSONResponse(scripted.json, scripted.status, headers=scripted.headers)
                return Response(scripted.body, scripted.status, headers=scripted.headers)
            # Handlers are plain functions run off the loop, so a slow one never stalls other requests.
            response: Response = await asyncio.to_thread(handler, recorded, scripted or Reply())
            if scripted:
                response.headers.update(scripted.headers)
                if scripted.chunk_delay_s and response.status_code == 200:
                    response = _Throttled(response, recorded, scripted.chunks, scripted.chunk_delay_s)
            return response

        return endpoint

    async def _record(self, route: str, request: Request) -> Recorded:
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        parsed_json, form, files = None, None, {}
        if content_type.startswith("application/json") and body:
            parsed_json = await request.json()
        elif content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            async with request.form() as parsed:
                # A file part is recorded by its filename in `form`, and whole in `files`.
                form = {k: v if isinstance(v, str) else str(v.filename) for k, v in parsed.items()}
                for name, value in parsed.multi_items():
                    if not isinstance(value, str):
                        files[name] = RecordedFile(
                            str(value.filename), str(value.content_type or ""), await value.read()
                        )
        recorded = Recorded(
            route,
            request.method,
            request.url.path,
            dict(request.query_params),
            {k.lower(): v for k, v in request.headers.items()},
            parsed_json,
            form,
            body,
            peer=(request.client.host, request.client.port) if request.client else None,
            files=files,
        )
        with self._lock:
            self.requests.append(recorded)
        return recorded

    @staticmethod
    def _unauthorized(route: str) -> Response:
        if route.startswith("openai"):
            error = {
                "message": "Incorrect API key provided",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
            return JSONResponse({"error": error}, 401)
        if route.startswith("minimax"):
            return JSONResponse({"base_resp": {"status_code": 1004, "status_msg": "authentication failure"}})
        return JSONResponse(
            {
                "title": "Unauthenticated",
                "detail": "You did not pass a valid authentication token",
                "status": 401,
            },
            401,
        )

    def _step(self, task_id: str, steps: list[Any]) -> Any:
        with self._lock:
            task = self._tasks[task_id]
            index = min(task["polls"], len(steps) - 1)
            task["polls"] += 1
        return steps[index]

    # -- OpenAI -----------------------------------------------------------------------------
    def _openai_edits(self, call: Recorded, reply: Reply) -> Response:
        if "image" not in call.files and "image[]" not in call.files:
            error = {
                "message": "Missing required parameter: 'image'.",
                "type": "invalid_request_error",
                "param": "image",
                "code": "missing_required_parameter",
            }
            return JSONResponse({"error": error}, 400)
        return self._openai_images(call, reply)

    def _openai_images(self, call: Recorded, _reply: Reply) -> Response:
        body = call.json or call.form or {}  # generations are JSON, edits multipart
        model, n = str(body.get("model", "dall-e-2")), int(body.get("n") or 1)
        items: list[dict[str, Any]] = []
        for _ in range(n):
            if model.startswith("gpt-image") or body.get("response_format") == "b64_json":
                items.append({"b64_json": base64.b64encode(self.image_output or self.png).decode()})
            else:
                items.append({"url": self.media_url("image")})
            if model == "dall-e-3":
                items[-1]["revised_prompt"] = f"revised: {body.get('prompt')}"
        data: dict[str, Any] = {"created": int(time.time()), "data": items}
        if model.startswith("gpt-image"):
            # Shaped like ImageGenUsage in the OpenAPI description, details included (they are required).
            data["usage"] = {
                "input_tokens": 12,
                "output_tokens": 4160 * n,
                "total_tokens": 12 + 4160 * n,
                "input_tokens_details": {"text_tokens": 12, "image_tokens": 0},
            }
        return JSONResponse(data, headers={"x-request-id": f"req_{_hex()}"})

    def _video_resource(self, task_id: str, status: str, progress: int) -> dict[str, Any]:
        task = self._tasks[task_id]
        resource = {
            "id": task_id,
            "object": "video",
            "model": task["model"],
            "status": status,
            "progress": progress,
            "created_at": task["created"],
            "completed_at": None,
            "expires_at": None,
            "prompt": task["prompt"],
            "size": task["size"],
            "seconds": task["seconds"],
            "remixed_from_video_id": None,
            "error": None,
        }
        if status == "completed":
            resource["completed_at"] = int(time.time())
            resource["expires_at"] = task["created"] + 86400
        if status == "failed":
            resource["error"] = {"code": "video_generation_failed", "message": "fake failure"}
        return resource

    def _openai_create(self, call: Recorded, _reply: Reply) -> Response:
        form = call.form or {}
        task_id = f"video_{_hex()}"
        with self._lock:
            self._tasks[task_id] = {
                "polls": 0,
                "model": form.get("model", "sora-2"),
                "prompt": form.get("prompt"),
                "size": form.get("size", "720x1280"),
                "seconds": form.get("seconds", "4"),
                "created": int(time.time()),
                "status": "queued",
            }
        return JSONResponse(self._video_resource(task_id, "queued", 0), headers={"x-request-id": f"req_{_hex()}"})

    def _openai_missing(self, task_id: str) -> Response:
        error = {
            "message": f"Video {task_id} not found",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        return JSONResponse({"error": error}, 404)

    def _openai_get(self, call: Recorded, _reply: Reply) -> Response:
        task_id = call.path.rsplit("/", 1)[-1]
        if task_id not in self._tasks:
            return self._openai_missing(task_id)
        status, progress = self._step(task_id, self.openai_video_steps)
        self._tasks[task_id]["status"] = status
        resource = self._video_resource(task_id, status, progress)
        return JSONResponse(resource, headers={"openai-poll-after-ms": "50"})

    def _openai_delete(self, call: Recorded, _reply: Reply) -> Response:
        task_id = call.path.rsplit("/", 1)[-1]
        with self._lock:
            known = self._tasks.pop(task_id, None) is not None
        if not known:
            return self._openai_missing(task_id)
        # The OpenAPI description answers DeletedVideoResource, not the video itself.
        return JSONResponse({"id": task_id, "object": "video.deleted", "deleted": True})

    def _openai_content(self, call: Recorded, _reply: Reply) -> Response:
        task_id = call.path.split("/")[-2]
        if self._tasks.get(task_id, {}).get("status") != "completed":
            return self._openai_missing(task_id)
        if call.query.get("variant") == "thumbnail":
            return Response(self.png, media_type="image/png")
        return Response(self.video_output or self.mp4, media_type="video/mp4")

    # -- MiniMax ----------------------------------------------------------------------------
    @staticmethod
    def _ok() -> dict[str, Any]:
        return {"base_resp": {"status_code": 0, "status_msg": "success"}}

    def _minimax_create(self, call: Recorded, _reply: Reply) -> Response:
        request = call.json or {}
        if str(request.get("model", "")).startswith("I2V") and not request.get("first_frame_image"):
            return JSONResponse({"base_resp": {"status_code": 2013, "status_msg": "first_frame_image is required"}})
        task_id = str(secrets.randbelow(10**12))
        with self._lock:
            self._tasks[task_id] = {"polls": 0, "request": call.json}
        return JSONResponse({"task_id": task_id} | self._ok(), headers={"trace-id": _hex()})

    def _minimax_query(self, call: Recorded, _reply: Reply) -> Response:
        task_id = call.query.get("task_id", "")
        if task_id not in self._tasks:
            return JSONResponse({"base_resp": {"status_code": 2013, "status_msg": "invalid task_id"}})
        status = self._step(task_id, self.minimax_steps)
        data: dict[str, Any] = {"task_id": task_id, "status": status, "video_width": 160, "video_height": 96}
        if status == "Success":
            data["file_id"] = f"9{task_id}"
        return JSONResponse(data | self._ok())

    def _minimax_files(self, call: Recorded, _reply: Reply) -> Response:
        file_id = call.query.get("file_id", "")
        file = {
            "file_id": file_id,
            "bytes": len(self.mp4),
            "created_at": int(time.time()),
            "filename": "output.mp4",
            "purpose": "video_generation",
            "download_url": self.media_url("video"),
        }
        return JSONResponse({"file": file} | self._ok())

    # -- Replicate --------------------------------------------------------------------------
    def _prediction(self, task_id: str, status: str) -> dict[str, Any]:
        task = self._tasks[task_id]
        inputs = task["input"]
        output: Any = None
        if status == "succeeded":
            if task["video"]:
                output = self.media_url("video")
            else:
                output = [self.media_url("image") for _ in range(int(inputs.get("num_outputs") or 1))]
        base = f"{self.replicate_base}/v1/predictions/{task_id}"
        done = status in ("succeeded", "failed", "canceled", "aborted")
        return {
            "id": task_id,
            "model": task["model"],
            "status": status,
            "input": inputs,
            "output": output,
            "error": "fake prediction error" if status == "failed" else None,
            "logs": "",
            "metrics": {"predict_time": 1.2} if status == "succeeded" else {},
            "created_at": task["created"],
            "started_at": None if status == "starting" else task["created"],
            "completed_at": _iso_now() if done else None,
            "urls": {"get": base, "cancel": f"{base}/cancel"},
        }

    def _replicate_create(self, call: Recorded, _reply: Reply) -> Response:
        parts = call.path.split("/")
        model = f"{parts[-3]}/{parts[-2]}"
        task_id = _hex()
        with self._lock:
            self._tasks[task_id] = {
                "polls": 0,
                "model": model,
                "input": (call.json or {}).get("input", {}),
                "video": "video" in parts[-2] or model in self.replicate_video_models,
                "created": _iso_now(),
            }
        waited = call.headers.get("prefer", "").strip().lower().startswith("wait")
        return JSONResponse(self._prediction(task_id, "succeeded" if waited else "starting"), 201)

    @staticmethod
    def _replicate_missing() -> Response:
        return JSONResponse({"title": "Not found", "detail": "Prediction not found", "status": 404}, 404)

    def _replicate_get(self, call: Recorded, _reply: Reply) -> Response:
        task_id = call.path.rsplit("/", 1)[-1]
        if task_id not in self._tasks:
            return self._replicate_missing()
        return JSONResponse(self._prediction(task_id, self._step(task_id, self.replicate_steps)))

    def _replicate_cancel(self, call: Recorded, _reply: Reply) -> Response:
        task_id = call.path.split("/")[-2]
        if task_id not in self._tasks:
            return self._replicate_missing()
        return JSONResponse(self._prediction(task_id, "canceled"))

    def _replicate_upload(self, call: Recorded, _reply: Reply) -> Response:
        upload = call.files.get("content")
        if upload is None:
            return JSONResponse({"title": "Invalid request", "detail": "content is required", "status": 422}, 422)
        file_id = _hex()
        url = f"{self.replicate_base}/v1/files/{file_id}"
        return JSONResponse(
            {
                "id": file_id,
                "name": upload.filename,
                "content_type": upload.content_type,
                "size": len(upload.data),
                "created_at": _iso_now(),
                "urls": {"get": url},
            },
            201,
        )

    # -- downloads --------------------------------------------------------------------------
    def _media_download(self, call: Recorded, reply: Reply) -> Response:
        token = call.path.rsplit("/", 1)[-1]
        with self._lock:
            kind, issued = self._media_links.get(token, ("", 0.0))
        if not kind or time.monotonic() - issued >= self.media_ttl_s:
            return Response(b"Request has expired", 403, media_type="text/plain")
        if kind == "image":
            data, media_type = self.image_output or self.png, "image/png"
        else:
            data, media_type = self.video_output or self.mp4, "video/mp4"
        if reply.truncate:
            return _Truncated(data, media_type)
        return Response(data, media_type=media_type)


class _NoDelayH11(H11Protocol):
    """uvicorn's h11 protocol with Nagle off on each connection. Without it every answer (headers
    and body go out as two writes) waits ~40 ms for the client's delayed ACK, which real provider
    front ends do not add and which would swamp latency measurements against the fake."""

    def connection_made(self, transport: Any) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


class _Truncated(Response):
    """Declares the full length, sends half, then ends the connection: a broken download."""

    def __init__(self, data: bytes, media_type: str) -> None:
        super().__init__(data, media_type=media_type)
        self._half = data[: len(data) // 2]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self._half, "more_body": True})
        raise ConnectionAbortedError("fake provider hung up mid-download")


class _Throttled(Response):
    """Sends another response's body in pieces with a pause before each piece after the first,
    counting what went out in ``recorded.sent``: a slow download a test can interrupt."""

    def __init__(self, inner: Response, recorded: Recorded, chunks: int, delay_s: float) -> None:
        self.status_code = inner.status_code
        self.body = bytes(inner.body)
        self.raw_headers = inner.raw_headers  # Content-Length included: the client expects it all
        self.background = None
        self._recorded = recorded
        self._size = max(1, -(-len(self.body) // max(1, chunks)))
        self._delay_s = delay_s

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        for start in range(0, len(self.body), self._size):
            if start:
                await asyncio.sleep(self._delay_s)
            piece = self.body[start : start + self._size]
            self._recorded.sent += len(piece)
            more = start + self._size < len(self.body)
            await send({"type": "http.response.body", "body": piece, "more_body": more})
