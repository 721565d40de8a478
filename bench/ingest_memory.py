"""Peak memory and throughput of ingesting a large provider video into S3, against a naive copy.

Three processes, so nothing pollutes the measured one: moto's S3 server, a provider server that
streams a valid MP4 of the asked size (a real clip followed by an MP4 `free` box of padding), and
one fresh ingesting process per (method, size, run). Each ingesting process reports its peak
RSS growth over its own RSS before the copy started (VmHWM - VmRSS), and its throughput. The
naive baseline is the system we replace: the whole body in memory, then one put_object.

    .venv/bin/python bench/ingest_memory.py [SIZE_MIB ...]     # default: 64 256 1024
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MiB = 1024 * 1024
REPEATS = 3
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


# -- the provider: a big, valid MP4, streamed ---------------------------------------------------
def serve(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from mediagen.providers.local import encode_mp4

    with tempfile.TemporaryDirectory() as tmp:
        clip_path = Path(tmp) / "clip.mp4"
        encode_mp4(clip_path, "benchmark", 1, 320, 180, 24)
        clip = clip_path.read_bytes()

    async def video(request):
        total = int(request.path_params["size"])
        padding = total - len(clip)

        async def body():
            yield clip
            yield padding.to_bytes(4, "big") + b"free"  # a box players skip
            left, chunk = padding - 8, bytes(MiB)
            while left > 0:
                yield chunk[: min(left, MiB)]
                left -= MiB

        return StreamingResponse(body(), media_type="video/mp4", headers={"content-length": str(total)})

    uvicorn.run(Starlette(routes=[Route("/video/{size:int}", video)]), host="127.0.0.1", port=port, log_level="warning")


# -- one measured copy --------------------------------------------------------------------------
def ingest(method: str, url: str, endpoint: str, bucket: str) -> None:
    import boto3  # imported before the baseline reading, as in the app
    import httpx

    from mediagen.config import Settings
    from mediagen.db.tables import utcnow
    from mediagen.jobs.status import JobKind
    from mediagen.media.ingest import ingest_outputs
    from mediagen.providers.base import MediaSource
    from mediagen.studio import Studio

    settings = Settings(
        data_dir=Path(tempfile.mkdtemp()),
        storage="s3",
        s3_bucket=bucket,
        s3_endpoint_url=endpoint,
        max_media_bytes=4096 * MiB,
        download_timeout_s=900,
        lease_s=1000,
        outbound_allow=["127.0.0.1/32"],  # the benchmark's provider is on loopback
    )
    studio = Studio(settings)  # for the storage, limits, URL guard and download client the poller uses
    storage, limits = studio.storage, studio.download_limits
    s3 = boto3.client("s3", endpoint_url=endpoint)
    before = _status_kib("VmRSS")
    started = time.perf_counter()
    if method == "streaming":
        [stored] = ingest_outputs(
            storage,
            [MediaSource(url=url)],
            kind=JobKind.VIDEO,
            job_id=f"bench{int(started)}",
            created_at=utcnow(),
            limits=limits,
        )
        size = stored.bytes
    else:  # the system we replace: the whole body in memory, then one put_object
        body = httpx.get(url, timeout=600).content
        s3.put_object(Bucket=bucket, Key=f"naive/{int(started)}.mp4", Body=body, ContentType="video/mp4")
        size = len(body)
    elapsed = time.perf_counter() - started
    peak = _status_kib("VmHWM")
    print(json.dumps({"bytes": size, "seconds": elapsed, "growth_mib": (peak - before) / 1024}))


def _median(results: list[dict]) -> dict:
    return {
        "seconds": statistics.median(r["seconds"] for r in results),
        "growth_mib": max(r["growth_mib"] for r in results),  # the worst peak, not a typical one
    }


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str) -> None:
    import httpx

    for _ in range(200):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def main(sizes_mib: list[int]) -> None:
    env = {**os.environ, **AWS, "PYTHONPATH": str(ROOT)}
    s3_port, provider_port = _free_port(), _free_port()
    endpoint = f"http://127.0.0.1:{s3_port}"
    moto = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    provider = subprocess.Popen([sys.executable, __file__, "serve", str(provider_port)], env=env)
    rows = []
    try:
        _wait(endpoint)
        _wait(f"http://127.0.0.1:{provider_port}/video/{MiB}")
        import boto3

        bucket = "bench-media"
        boto3.client(
            "s3", endpoint_url=endpoint, **{k.lower(): v for k, v in AWS.items() if "KEY" in k}, region_name="us-east-1"
        ).create_bucket(Bucket=bucket)
        for size in sizes_mib:
            url = f"http://127.0.0.1:{provider_port}/video/{size * MiB}"
            runs: dict[str, list[dict]] = {"streaming": [], "naive": []}
            for _ in range(REPEATS):  # interleaved, so a busy moment on the machine hits both
                for method in runs:
                    out = subprocess.run(
                        [sys.executable, __file__, "ingest", method, url, endpoint, bucket],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    runs[method].append(json.loads(out.stdout.strip().splitlines()[-1]))
            rows.append((size, {method: _median(results) for method, results in runs.items()}))
    finally:
        provider.terminate()
        moto.terminate()

    print(
        f"Ingest of a provider video into S3 (moto server), {REPEATS} runs each: worst peak RSS growth of the "
        "ingesting process, median throughput"
    )
    print("| size | mediagen peak growth | naive peak growth | mediagen MiB/s | naive MiB/s | throughput ratio |")
    print("|---|---|---|---|---|---|")
    for size, f in rows:
        ours, naive = f["streaming"], f["naive"]
        ours_rate, naive_rate = size / ours["seconds"], size / naive["seconds"]
        print(
            f"| {size} MiB | {ours['growth_mib']:.1f} MiB | {naive['growth_mib']:.1f} MiB | {ours_rate:.1f} | "
            f"{naive_rate:.1f} | {ours_rate / naive_rate:.2f}x |"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "ingest":
        ingest(*sys.argv[2:6])
    else:
        main([int(a) for a in sys.argv[1:]] or [64, 256, 1024])
