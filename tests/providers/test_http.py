"""The shared provider HTTP mechanism and the pure builders/parsers, with respx and plain values."""

from __future__ import annotations

import time

import httpx
import pytest
import respx

from mediagen.catalog import validate_params
from mediagen.errors import InvalidInput, ProviderError
from mediagen.providers import minimax, openai, replicate
from mediagen.providers.base import TaskState
from mediagen.providers.http import ProviderHttp, retry_after_s

BASE = "https://provider.test/v1"
SECRET = "sk-very-secret-123"


def _http(max_retries: int = 2) -> ProviderHttp:
    return ProviderHttp(
        label="OpenAI",
        key_env="OPENAI_API_KEY",
        base_url=BASE,
        api_key=SECRET,
        read_error=openai.read_error,
        timeout_s=5,
        max_retries=max_retries,
    )


def _openai_error(status: int, message: str, code: str | None = None, **headers: str) -> httpx.Response:
    body = {"error": {"message": message, "type": "x", "param": None, "code": code}}
    return httpx.Response(status, json=body, headers=headers)


@respx.mock
def test_rate_limit_is_retried_after_the_providers_wait() -> None:
    route = respx.post(f"{BASE}/images/generations").mock(
        side_effect=[
            _openai_error(429, "slow down", **{"retry-after-ms": "200"}),
            httpx.Response(200, json={"ok": 1}),
        ]
    )
    started = time.monotonic()
    assert _http().call("POST", "images/generations", creates=True, json={}).json() == {"ok": 1}
    assert route.call_count == 2 and time.monotonic() - started >= 0.2
    assert route.calls[0].request.headers["authorization"] == f"Bearer {SECRET}"


@respx.mock
def test_server_errors_are_retried_a_bounded_number_of_times() -> None:
    route = respx.get(f"{BASE}/videos/v1").mock(return_value=_openai_error(503, "overloaded"))
    with pytest.raises(ProviderError) as caught:
        _http(max_retries=2).call("GET", "videos/v1")
    assert route.call_count == 3
    assert caught.value.retryable and caught.value.code == "server_error" and "overloaded" in str(caught.value)


@respx.mock
def test_quota_auth_and_bad_requests_are_final() -> None:
    respx.post(f"{BASE}/q").mock(return_value=_openai_error(429, "You exceeded your quota", "insufficient_quota"))
    respx.post(f"{BASE}/a").mock(return_value=_openai_error(401, f"Incorrect API key provided: {SECRET}"))
    respx.post(f"{BASE}/b").mock(
        return_value=httpx.Response(400, json={"error": {"message": "bad size", "param": "size", "code": None}})
    )
    respx.post(f"{BASE}/p").mock(return_value=_openai_error(400, "blocked by safety", "moderation_blocked"))
    http = _http()
    outcomes = {}
    for path in "qabp":
        with pytest.raises(ProviderError) as caught:
            http.call("POST", path, creates=True)
        outcomes[path] = caught.value
    assert [respx.routes[i].call_count for i in range(4)] == [1, 1, 1, 1]
    assert outcomes["q"].code == "quota" and not outcomes["q"].retryable
    assert outcomes["a"].code == "auth" and str(outcomes["a"]).startswith("OPENAI_API_KEY was rejected")
    assert SECRET not in str(outcomes["a"]) and "***" in str(outcomes["a"])
    assert outcomes["b"].code == "bad_request" and "bad size (field: size)" in str(outcomes["b"])
    assert outcomes["p"].code == "content_policy" and "blocked by safety" in str(outcomes["p"])


@respx.mock
def test_a_create_call_that_times_out_after_sending_is_never_resent() -> None:
    route = respx.post(f"{BASE}/videos").mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(ProviderError) as caught:
        _http().call("POST", "videos", creates=True)
    assert route.call_count == 1
    assert caught.value.code == "outcome_unknown" and not caught.value.retryable


@respx.mock
def test_reads_that_time_out_are_retried_and_connect_errors_too() -> None:
    route = respx.get(f"{BASE}/videos/x").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.Response(200, json={})]
    )
    assert _http().call("GET", "videos/x").status_code == 200 and route.call_count == 3


@respx.mock
def test_a_long_retry_after_is_handed_to_the_caller_not_slept_through() -> None:
    route = respx.get(f"{BASE}/videos/x").mock(return_value=_openai_error(429, "later", **{"retry-after": "90"}))
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        _http().call("GET", "videos/x")
    assert route.call_count == 1 and time.monotonic() - started < 5
    assert caught.value.retryable and caught.value.retry_after_s == 90


def test_retry_after_header_forms() -> None:
    assert retry_after_s(httpx.Response(429, headers={"retry-after-ms": "1500"})) == 1.5
    assert retry_after_s(httpx.Response(429, headers={"retry-after": "3"})) == 3
    assert retry_after_s(httpx.Response(429, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0
    assert retry_after_s(httpx.Response(429)) is None


# -- OpenAI ---------------------------------------------------------------------------------
def _spec(models, name):
    return next(m for m in models if m.name == name)


def test_openai_image_request_and_parsing() -> None:
    spec = _spec(openai.MODELS, "dall-e-3")
    params = validate_params(spec, {"size": "1792x1024", "quality": "hd"})
    assert openai.image_request(spec, "otter", params) == {
        "model": "dall-e-3",
        "prompt": "otter",
        "n": 1,
        "size": "1792x1024",
        "quality": "hd",
        "style": "vivid",
        "response_format": "url",
    }
    result = openai.parse_images(
        {
            "data": [{"url": "https://cdn/x.png?sig=1", "revised_prompt": "an otter"}],
            "usage": {"total_tokens": 9},
        },
        "req_1",
    )
    assert result.outputs[0].url == "https://cdn/x.png?sig=1" and not result.outputs[0].headers
    assert (result.revised_prompt, result.request_id, result.usage["total_tokens"]) == (
        "an otter",
        "req_1",
        9,
    )
    assert openai.parse_images({"data": [{"b64_json": "aGk="}]}).outputs[0].b64 == "aGk="
    with pytest.raises(ProviderError, match="no images"):
        openai.parse_images({"data": []})


@pytest.mark.parametrize(
    ("model", "params", "field"),
    [
        ("dall-e-3", {"n": 2}, "n"),
        ("dall-e-2", {"size": "1792x1024"}, "size"),
        ("gpt-image-1", {"style": "vivid"}, "style"),
        ("gpt-image-1", {"background": "transparent", "output_format": "jpeg"}, "background"),
        ("sora-2", {"size": "1792x1024"}, "size"),
        ("sora-2", {"duration": 5}, "duration"),
    ],
)
def test_openai_options_are_validated_per_model(model, params, field) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_params(_spec(openai.MODELS, model), params)
    assert caught.value.field == field


def test_openai_video_parsing_maps_states_and_content_urls() -> None:
    http = _http()
    running = openai.parse_video({"id": "v1", "status": "in_progress", "progress": 40}, http, 2.5)
    assert (running.state, running.progress, running.retry_after_s) == (TaskState.RUNNING, 40, 2.5)
    done = openai.parse_video({"id": "v1", "status": "completed", "progress": 100, "seconds": "8"}, http, None)
    [video] = done.outputs
    assert video.url == f"{BASE}/videos/v1/content?variant=video"
    assert video.headers["Authorization"] == f"Bearer {SECRET}"
    assert video.poster is not None and video.poster.url.endswith("variant=thumbnail")
    assert done.usage["seconds"] == 8
    failed = openai.parse_video({"id": "v1", "status": "failed", "error": {"code": "x", "message": "nope"}}, http, None)
    assert (failed.state, failed.error_code, failed.error_message) == (TaskState.FAILED, "x", "OpenAI: nope")


# -- MiniMax --------------------------------------------------------------------------------
def test_minimax_rules_and_request() -> None:
    spec = _spec(minimax.MODELS, "MiniMax-Hailuo-02")
    with pytest.raises(InvalidInput, match="1080P videos can only be 6 s long"):
        validate_params(spec, {"duration": 10, "resolution": "1080P"})
    with pytest.raises(InvalidInput, match="10 s videos are only made at 768P"):
        validate_params(spec, {"duration": 10, "resolution": "512P"})
    params = validate_params(spec, {"duration": 10, "resolution": "768P", "prompt_optimizer": "off"})
    assert minimax.create_request(spec, "p", params) == {
        "model": "MiniMax-Hailuo-02",
        "prompt": "p",
        "prompt_optimizer": False,
        "duration": 10,
        "resolution": "768P",
    }
    assert "duration" not in minimax.create_request(_spec(minimax.MODELS, "T2V-01"), "p", {})


@pytest.mark.parametrize(
    ("code", "kind", "retryable"),
    [
        (1002, "rate_limited", True),
        (1004, "auth", False),
        (1008, "quota", False),
        (1026, "content_policy", False),
        (2013, "bad_request", False),
        (1024, "provider_error", False),
    ],
)
def test_minimax_errors_inside_200_bodies(code, kind, retryable) -> None:
    with pytest.raises(ProviderError) as caught:
        minimax.check_base_resp({"base_resp": {"status_code": code, "status_msg": "said so"}})
    assert (caught.value.code, caught.value.retryable) == (kind, retryable)
    assert "said so" in str(caught.value)


def test_minimax_query_states() -> None:
    assert minimax.parse_query({"status": "Queueing"})[:2] == (TaskState.QUEUED, 10)
    assert minimax.parse_query({"status": "Processing"})[0] is TaskState.RUNNING
    assert minimax.parse_query({"status": "Success", "file_id": ""})[0] is TaskState.RUNNING  # not yet
    assert minimax.parse_query({"status": "Success", "file_id": "42"})[2] == "42"
    assert minimax.parse_query({"status": "Fail"})[0] is TaskState.FAILED


# -- Replicate ------------------------------------------------------------------------------
def test_replicate_input_and_prediction_parsing() -> None:
    assert replicate.prediction_input("p", {"n": 2, "aspect_ratio": "16:9"}) == {
        "prompt": "p",
        "num_outputs": 2,
        "aspect_ratio": "16:9",
    }
    done = replicate.parse_prediction(
        {
            "status": "succeeded",
            "output": ["https://r/a.webp", "https://r/b.webp"],
            "metrics": {"predict_time": 2},
        }
    )
    assert [o.url for o in done.outputs] == ["https://r/a.webp", "https://r/b.webp"]
    assert done.usage == {"predict_time_s": 2}
    assert replicate.parse_prediction({"status": "succeeded", "output": "https://r/v.mp4"}).outputs[0].url
    running = replicate.parse_prediction({"status": "processing", "logs": "  5%|#\n 37%|###"})
    assert (running.state, running.progress) == (TaskState.RUNNING, 37)
    assert replicate.parse_prediction({"status": "aborted"}).state is TaskState.CANCELED
    with pytest.raises(ProviderError, match="no file URLs"):
        replicate.parse_prediction({"status": "succeeded", "output": {"weird": 1}})
