"""``/api/compare`` in process (Starlette's test client over the real mounts, a real studio): the
group and its columns, one failing model, refusals naming the field, who may do what, replays."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from mediagen import server
from mediagen.db.tables import Comparison, Job
from mediagen.errors import ProviderError
from mediagen.jobs.schema import JobOut
from mediagen.providers import PROVIDERS, configured_catalog, read_provider_settings
from mediagen.studio import Studio

from ..support.fakes import ScriptedProvider, scripted_entry
from .test_http_api import _client, _error, signed_in  # noqa: F401  (a fixture)

SMALL = {"size": "256x256"}


@pytest.fixture
def local(studio: Studio, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Local mode, with a scripted model whose every image fails."""
    provider = ScriptedProvider()
    provider.image_answer = ProviderError("the model is down", code="unavailable")
    monkeypatch.setitem(PROVIDERS, "scripted", scripted_entry(provider))
    studio.provider_settings = read_provider_settings()
    studio.catalog = configured_catalog(studio.provider_settings)
    server.use(studio)
    yield _client(studio, sign_in=False)
    server.use(None)


def _count(studio: Studio, table: Any) -> int:
    with studio.db.read() as session:
        return session.scalar(select(func.count()).select_from(table))


def _pair(client: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    body = {"prompt": "a kite", "columns": [{"model": "local-image", "params": {"seed": s}} for s in (1, 2)]}
    answer = client.post("/api/compare", json={**body, "params": SMALL}, headers=headers or {})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_three_models_one_failing_answer_201_with_every_column(local, studio) -> None:
    body = {
        "prompt": "a lighthouse at dusk",
        "columns": [
            {"model": "local-image", "params": {"seed": 1}},
            {"model": "scripted-image"},
            {"model": "local-image", "params": {"seed": 2}},
        ],
        "params": SMALL,
    }
    answer = local.post("/api/compare", json=body)
    assert answer.status_code == 201, answer.text
    group = answer.json()
    assert group["kind"] == "image" and group["prompt"] == "a lighthouse at dusk" and group["finished"]
    columns = group["columns"]
    assert [c["status"] for c in columns] == ["succeeded", "failed", "succeeded"]
    assert columns[1]["skipped"] == ["size"] and "the model is down" in columns[1]["error"]
    assert columns[0]["error"] is None and columns[0]["seconds"] > 0 and columns[0]["estimated_cost"] is None
    assert [j["id"] for j in group["jobs"]] == [c["job_id"] for c in columns]
    for job in group["jobs"]:
        JobOut.model_validate(job)
    assert [len(j["assets"]) for j in group["jobs"]] == [1, 0, 1]
    again = local.get(f"/api/compare/{group['id']}")
    assert again.status_code == 200 and again.json()["columns"] == columns


def test_refusals_name_the_field_and_write_nothing(local, studio) -> None:
    two = [{"model": "local-image"}, {"model": "dall-e-9"}]
    assert _error(local.post("/api/compare", json={"prompt": "x", "columns": two}), 400)["param"] == "columns[1].model"
    one = {"prompt": "x", "models": ["local-image"]}
    assert _error(local.post("/api/compare", json=one), 400)["param"] == "columns"
    strict = {"prompt": "x", "columns": [{"model": "local-image"}, {"model": "local-image", "params": {"sead": 1}}]}
    assert _error(local.post("/api/compare", json=strict), 400)["param"] == "columns[1].params.sead"
    both = {"prompt": "x", "models": ["local-image"] * 2, "columns": [{"model": "local-image"}] * 2}
    assert _error(local.post("/api/compare", json=both), 400)
    file_path = {"prompt": "x", "models": ["local-image"] * 2, "image": "/etc/hostname"}
    assert _error(local.post("/api/compare", json=file_path), 400)["param"] == "image"
    assert _count(studio, Comparison) == 0 and _count(studio, Job) == 0
    assert _error(local.get("/api/compare/nope"), 404)
    assert _error(local.post("/api/compare/nope/columns/0/rerun"), 404)


def test_video_columns_answer_queued(local) -> None:
    body = {"prompt": "waves", "kind": "video", "models": ["local-video", "local-video"], "params": {"duration": 1}}
    answer = local.post("/api/compare", json=body)
    assert answer.status_code == 201, answer.text
    group = answer.json()
    assert [c["status"] for c in group["columns"]] == ["queued", "queued"] and not group["finished"]


def test_an_idempotency_key_replays_the_group(local, studio) -> None:
    body = {"prompt": "a kite", "models": ["local-image", "local-image"], "params": SMALL}
    headers = {"Idempotency-Key": "kite-1"}
    first = local.post("/api/compare", json=body, headers=headers)
    second = local.post("/api/compare", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json()["id"] == first.json()["id"] and second.headers["Idempotent-Replayed"] == "true"
    assert _count(studio, Comparison) == 1 and _count(studio, Job) == 2
    assert _error(local.post("/api/compare", json={**body, "prompt": "a boat"}, headers=headers), 409)


def test_owners_reviewers_and_admins(signed_in, studio) -> None:  # noqa: F811
    client, headers = signed_in
    assert _error(
        client.post("/api/compare", json={"prompt": "x", "models": ["local-image"] * 2}, headers=headers["rev"]), 403
    )
    group = _pair(client, headers["ana"])
    path = f"/api/compare/{group['id']}"
    assert _error(client.get(path, headers=headers["bob"]), 404)  # another creator's group is absent
    assert client.get(path, headers=headers["rev"]).status_code == 200  # reviewers read everything
    first = group["columns"][0]["job_id"]
    assert _error(client.post(f"{path}/star", json={"job_id": first}, headers=headers["bob"]), 404)
    assert _error(client.post(f"{path}/star", json={"job_id": first}, headers=headers["rev"]), 403)
    assert (
        _error(client.post(f"{path}/star", json={"job_id": "elsewhere"}, headers=headers["ana"]), 400)["param"]
        == "job_id"
    )
    starred = client.post(f"{path}/star", json={"job_id": first}, headers=headers["ana"])
    assert starred.status_code == 200 and starred.json()["winner_job_id"] == first
    assert _error(client.post(f"{path}/columns/1/rerun", headers=headers["rev"]), 403)
    assert _error(client.post(f"{path}/columns/1/rerun", headers=headers["bob"]), 404)
    rerun = client.post(f"{path}/columns/1/rerun", json={"params": {"seed": 5}}, headers=headers["adm"])
    assert rerun.status_code == 201, rerun.text
    column = rerun.json()["columns"][1]
    assert column["runs"] == 2 and column["status"] == "succeeded" and column["params"]["seed"] == 5
    assert column["job_id"] != group["columns"][1]["job_id"]
    assert _error(client.post(f"{path}/columns/9/rerun", headers=headers["ana"]), 400)["param"] == "column"


def test_the_openapi_document_describes_compare(local) -> None:
    paths = local.get("/api/openapi.json").json()["paths"]
    assert {
        "/api/compare",
        "/api/compare/{comparison_id}",
        "/api/compare/{comparison_id}/star",
        "/api/compare/{comparison_id}/columns/{column}/rerun",
    } <= set(paths)
    assert "201" in paths["/api/compare"]["post"]["responses"]
