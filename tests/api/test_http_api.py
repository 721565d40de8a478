"""The HTTP API in process (Starlette's test client over the real mounts, a real SQLite studio):
who may do what with a key, idempotency, errors in OpenAI's shape, aliases, cursors, bytes.
(`test_openai_sdk.py` drives the same API through `streamlit run app.py` and the official SDK.)"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mediagen import server
from mediagen.api import apps
from mediagen.auth import keys
from mediagen.db.tables import ApiKey, Job
from mediagen.studio import Studio

from ..conftest import run_to_end
from ..support import openai_spec

pytestmark = pytest.mark.one_database  # what it checks does not depend on the database

ROLES = {"ana@example.com": "creator", "bob@example.com": "creator", "rev@example.com": "reviewer"}
ROLES |= {"adm@example.com": "admin"}


def _client(studio: Studio, *, sign_in: bool, host: str = "127.0.0.1") -> TestClient:
    return TestClient(Starlette(routes=apps.build(lambda: sign_in)), client=(host, 40000))


@pytest.fixture
def local(studio: Studio) -> Iterator[TestClient]:
    """No sign-in: the studio's local mode."""
    server.use(studio)
    yield _client(studio, sign_in=False)
    server.use(None)


@pytest.fixture
def signed_in(studio: Studio) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    """Sign-in on, roles from MEDIAGEN_ROLES, and a key per user (headers to send)."""
    studio.settings = studio.settings.model_copy(update={"roles": ROLES})
    server.use(studio)
    headers = {}
    for email in [*ROLES, "nobody@example.com"]:
        _, secret = keys.create_key(studio, email, "test")
        headers[email.split("@")[0]] = {"Authorization": f"Bearer {secret}"}
    yield _client(studio, sign_in=True), headers
    server.use(None)


def _video(client: TestClient, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    answer = client.post(
        "/api/videos/generate",
        json={"prompt": "waves", "model": "local-video", "duration": 1, "size": "160x90", **body},
        headers=headers or {},
    )
    assert answer.status_code == 202, answer.text
    return answer.json()


def _error(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# -- keys, roles and owners ---------------------------------------------------------------------


def test_with_sign_in_every_call_needs_a_live_key(signed_in, studio) -> None:
    client, headers = signed_in
    assert _error(client.get("/v1/models"), 401)["type"] == "authentication_error"
    assert _error(client.get("/v1/models", headers={"Authorization": "Bearer mg_nope_x"}), 401)
    assert client.get("/v1/models", headers=headers["ana"]).status_code == 200
    # The header OpenAI's SDK sends, and the other one scripts often use.
    secret = headers["ana"]["Authorization"].removeprefix("Bearer ")
    assert client.get("/v1/models", headers={"X-API-Key": secret}).status_code == 200
    [ana] = keys.list_keys(studio, user="ana@example.com")
    assert ana.last_used_at is not None
    keys.revoke_key(studio, ana.id)
    assert "revoked" in _error(client.get("/v1/models", headers=headers["ana"]), 401)["message"]
    # Only a hash is kept: the secret is nowhere in the database.
    with studio.db.read() as session:
        assert secret not in {row.secret_sha256 for row in session.scalars(select(ApiKey))}


def test_a_key_takes_its_users_role_at_each_request(signed_in, studio) -> None:
    client, headers = signed_in
    assert "no role" in _error(client.get("/v1/models", headers=headers["nobody"]), 403)["message"]
    assert client.get("/v1/models", headers=headers["bob"]).status_code == 200
    # Taking bob's role away disables his key at once, with no restart.
    studio.settings = studio.settings.model_copy(update={"roles": {k: v for k, v in ROLES.items() if "bob" not in k}})
    assert _error(client.get("/v1/models", headers=headers["bob"]), 403)["type"] == "permission_error"


def test_sign_in_turned_on_while_running_needs_keys_within_a_second(studio, monkeypatch) -> None:
    server.use(studio)
    configured = {"auth": False}
    clock = {"now": 1000.0}
    monkeypatch.setattr(apps.time, "monotonic", lambda: clock["now"])
    client = TestClient(Starlette(routes=apps.build(lambda: configured["auth"])), client=("127.0.0.1", 40000))
    try:
        assert client.get("/v1/models").status_code == 200
        configured["auth"] = True  # an [auth] section written into secrets.toml
        clock["now"] += 0.5
        assert client.get("/v1/models").status_code == 200  # still the answer asked half a second ago
        clock["now"] += apps.SIGN_IN_RECHECK_S
        _error(client.get("/v1/models"), 401)
    finally:
        server.use(None)


def test_owners_reviewers_and_admins(signed_in) -> None:
    client, headers = signed_in
    task = _video(client, headers["ana"])["task_id"]
    path = f"/api/videos/tasks/{task}"
    # Another creator: as if it did not exist, for every verb.
    assert _error(client.get(path, headers=headers["bob"]), 404)
    assert _error(client.get(f"/v1/videos/{task}", headers=headers["bob"]), 404)
    assert _error(client.delete(path, headers=headers["bob"]), 404)
    assert client.get("/v1/videos", headers=headers["bob"]).json()["data"] == []
    # A reviewer reads everything and changes nothing.
    assert client.get(path, headers=headers["rev"]).json()["task_id"] == task
    assert [v["id"] for v in client.get("/v1/videos", headers=headers["rev"]).json()["data"]] == [task]
    assert _error(client.delete(path, headers=headers["rev"]), 403)["type"] == "permission_error"
    refused = client.post("/v1/images/generations", json={"prompt": "x"}, headers=headers["rev"])
    assert "reviewer" in _error(refused, 403)["message"]
    # The owner and an admin may act; the job is the owner's.
    assert client.get(path, headers=headers["ana"]).json()["status"] == "queued"
    assert client.delete(path, headers=headers["adm"]).status_code == 204
    assert client.get(path, headers=headers["ana"]).json()["status"] == "cancelled"
    retried = client.post(f"{path}/retry", headers=headers["ana"]).json()
    assert retried["retried_from"] == task
    assert client.get(retried["check_status_url"], headers=headers["ana"]).json()["status"] == "queued"


def test_local_mode_without_a_key_is_the_local_admin_from_this_machine_only(local, studio) -> None:
    assert local.get("/v1/models").status_code == 200
    job_id = _video(local)["task_id"]
    with studio.db.read() as session:
        assert session.get(Job, job_id).owner == "local"
    elsewhere = _client(studio, sign_in=False, host="192.0.2.7")
    assert "other machines" in _error(elsewhere.get("/v1/models"), 401)["message"]


# -- the seed's endpoints ------------------------------------------------------------------------


def test_an_image_answers_with_our_stored_copy(local, studio) -> None:
    answer = local.post("/api/images/generate", json={"prompt": "a sunset", "size": "256x256"}).json()
    assert set(answer) == {"created", "data", "model", "job_id"} and answer["model"] == "local-image"
    [image] = answer["data"]
    assert image["url"].startswith(studio.serving.media_base() + "/image/")
    inline = local.post(
        "/api/images/generate", json={"prompt": "a sunset", "size": "256x256", "response_format": "b64_json"}
    ).json()
    png = base64.b64decode(inline["data"][0]["b64_json"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_video_task_reads_in_the_seeds_words_with_one_result_object(local, studio) -> None:
    created = _video(local)
    assert created["status"] == "queued" and created["check_status_url"].endswith(created["task_id"])
    run_to_end(studio, created["task_id"])
    task = local.get(created["check_status_url"]).json()
    assert task["status"] == "completed" and task["progress"] == 100 and task["completed_at"]
    result = task["result"]
    assert result["content_type"] == "video/mp4" and result["resolution"] == "160x90" and result["file_size"] > 0
    assert result["video_url"].endswith(".mp4") and result["thumbnail_url"].endswith(".webp")
    assert _error(local.delete(f"/api/videos/tasks/{created['task_id']}"), 409)["code"] == "conflict"


def test_refusals_name_the_field(local) -> None:
    too_long = _error(local.post("/api/images/generate", json={"prompt": "x" * 5000}), 400)
    assert too_long["param"] == "prompt" and "5,000" in too_long["message"]
    unknown = _error(local.post("/api/images/generate", json={"prompt": "x", "colour": "red"}), 400)
    assert unknown["param"] == "colour"
    needs = _error(local.post("/api/images/generate", json={"prompt": "x", "model": "dall-e-3"}), 400)
    assert needs["param"] == "model" and "OPENAI_API_KEY" in needs["message"]
    size = _error(local.post("/v1/videos", data={"prompt": "x", "model": "local-video", "size": "7x7"}), 400)
    assert size["param"] == "size"
    assert _error(local.post("/v1/images/generations", content=b"{", headers={"content-type": "application/json"}), 400)
    huge = local.post("/v1/images/generations", content=b"x" * (apps.MAX_BODY_BYTES + 1))
    assert _error(huge, 413)["code"] == "too_large"
    assert _error(local.put("/v1/videos"), 405)
    assert _error(local.get("/v1/nothing"), 404)


def test_a_full_generation_backlog_answers_429_with_retry_after(local, studio) -> None:
    studio.settings = studio.settings.model_copy(update={"image_concurrency": 1, "image_backlog": 0})
    release = threading.Event()
    blocker = studio.run_generation(release.wait)
    try:
        answer = local.post("/v1/images/generations", json={"prompt": "x", "size": "256x256"})
        assert _error(answer, 429)["type"] == "rate_limit_error"
        assert int(answer.headers["Retry-After"]) >= 1
        with studio.db.read() as session:
            assert session.scalar(select(func.count()).select_from(Job)) == 0  # refused before anything
    finally:
        release.set()
        blocker.result()


# -- idempotency ---------------------------------------------------------------------------------


def test_an_idempotency_key_replays_the_first_answer_and_creates_nothing_more(local, studio) -> None:
    body = {"prompt": "waves", "model": "local-video", "duration": 1, "size": "160x90"}
    first = local.post("/api/videos/generate", json=body, headers={"Idempotency-Key": "k1"})
    again = local.post("/api/videos/generate", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 202 and first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = local.post("/api/videos/generate", json=body | {"prompt": "fire"}, headers={"Idempotency-Key": "k1"})
    assert "different request" in _error(other, 409)["message"]
    # A refused request frees its key: fixing the body and sending it again works.
    bad = local.post("/v1/images/generations", json={"prompt": ""}, headers={"Idempotency-Key": "k2"})
    assert _error(bad, 400)
    good = local.post(
        "/v1/images/generations", json={"prompt": "ok", "size": "256x256"}, headers={"Idempotency-Key": "k2"}
    )
    assert good.status_code == 200
    with studio.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 2


def test_racing_requests_with_one_key_make_one_job(local, studio) -> None:
    body = {"prompt": "a tree", "size": "256x256"}
    answers: list[Any] = []

    def send() -> None:
        answers.append(local.post("/v1/images/generations", json=body, headers={"Idempotency-Key": "race"}))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted({a.status_code for a in answers}) in ([200], [200, 409])
    with studio.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1


# -- OpenAI's shapes -----------------------------------------------------------------------------


def test_v1_bodies_match_openais_published_schemas(local, studio) -> None:
    images = local.post("/v1/images/generations", json={"prompt": "otter", "size": "256x256", "n": 2}).json()
    openai_spec.validator("ImagesResponse").validate(images)
    assert len(images["data"]) == 2
    video = local.post("/v1/videos", json={"prompt": "otter", "model": "local-video", "seconds": "1", "size": "160x90"})
    resource = openai_spec.validator("VideoResource", our_names=True)
    resource.validate(video.json())
    assert video.headers["openai-poll-after-ms"] == str(int(studio.settings.poll_interval_s * 1000))
    run_to_end(studio, video.json()["id"])
    done = local.get(f"/v1/videos/{video.json()['id']}").json()
    resource.validate(done)
    assert done["status"] == "completed" and done["seconds"] == "1" and done["completed_at"]
    openai_spec.validator("VideoListResource", our_names=True).validate(local.get("/v1/videos").json())
    deleted = local.delete(f"/v1/videos/{done['id']}").json()
    openai_spec.validator("DeletedVideoResource").validate(deleted)
    models = local.get("/v1/models").json()
    openai_spec.validator("ListModelsResponse").validate(models)
    openai_spec.validator("ErrorResponse").validate(local.get("/v1/videos/nope").json())


def test_canceled_and_timed_out_videos_are_failed_with_a_code_saying_so(local, studio) -> None:
    created = local.post("/v1/videos", data={"prompt": "x", "model": "local-video", "seconds": "1", "size": "160x90"})
    video_id = created.json()["id"]
    assert local.delete(f"/api/videos/tasks/{video_id}").status_code == 204
    canceled = local.get(f"/v1/videos/{video_id}").json()
    assert canceled["status"] == "failed" and canceled["error"]["code"] == "canceled"


def test_the_video_list_pages_by_cursor_both_ways(local, studio) -> None:
    made = [_video(local, prompt=f"clip {i}")["task_id"] for i in range(5)]
    seen, after = [], None
    while True:
        page = local.get("/v1/videos", params={"limit": 2, **({"after": after} if after else {})}).json()
        seen += [v["id"] for v in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == made[::-1]
    assert [v["id"] for v in local.get("/v1/videos", params={"order": "asc", "limit": 100}).json()["data"]] == made
    assert _error(local.get("/v1/videos", params={"after": "nope"}), 400)["param"] == "after"


def test_content_is_the_stored_bytes_with_ranges(local, studio) -> None:
    video_id = _video(local)["task_id"]
    assert _error(local.get(f"/v1/videos/{video_id}/content"), 409)
    run_to_end(studio, video_id)
    whole = local.get(f"/v1/videos/{video_id}/content")
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.content[4:8] == b"ftyp" and whole.headers["accept-ranges"] == "bytes"
    part = local.get(f"/v1/videos/{video_id}/content", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == whole.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(whole.content)}"
    tail = local.get(f"/v1/videos/{video_id}/content", headers={"Range": "bytes=-5"})
    assert tail.content == whole.content[-5:]
    beyond = local.get(f"/v1/videos/{video_id}/content", headers={"Range": f"bytes={len(whole.content)}-"})
    assert beyond.status_code == 416
    thumb = local.get(f"/v1/videos/{video_id}/content", params={"variant": "thumbnail"})
    assert thumb.headers["content-type"] == "image/webp" and thumb.content[8:12] == b"WEBP"
    assert _error(local.get(f"/v1/videos/{video_id}/content", params={"variant": "spritesheet"}), 400)


def test_the_openapi_document_describes_both_surfaces(local) -> None:
    document = local.get("/api/openapi.json").json()
    paths = set(document["paths"])
    assert {"/api/images/generate", "/api/videos/generate", "/api/videos/tasks/{task_id}"} <= paths
    assert {"/v1/models", "/v1/images/generations", "/v1/videos", "/v1/videos/{video_id}/content"} <= paths
    assert "multipart/form-data" in document["paths"]["/v1/videos"]["post"]["requestBody"]["content"]


def test_the_api_docs_page_loads_everything_from_the_studio_itself(local) -> None:
    page = local.get("/api/docs")
    assert page.status_code == 200
    # Every script, stylesheet and icon the page names is ours, and is there: the docs work offline.
    linked = re.findall(r'(?:src|href)=["\']([^"\']+)["\']|url: ?["\']([^"\']+)["\']', page.text)
    urls = {a or b for a, b in linked}
    assert urls and all(url.startswith("/api/") for url in urls), urls
    for url in urls:
        answer = local.get(url)
        assert answer.status_code == 200 and answer.content, url
    bundle = local.get("/api/docs/assets/swagger-ui-bundle.js").text
    assert "swagger-ui" in bundle and "openapi" in bundle.lower()
