"""Judge client overhead: ``judge.judge()`` against raw HTTP requests with the same bodies, same process.

    .venv/bin/python tests/benchmarks/bench_judge_client.py [--requests 24] [--rounds 3] [--base-url URL]

Starts the CPU vLLM server with SmolLM2-135M-Instruct (unless ``--base-url`` points at a running one),
builds ``--requests`` distinct judge prompts (synthetic arithmetic responses), and at concurrency 1, 4
and 16 times, in alternating rounds:

* raw: one aiohttp session, a semaphore, POST the request body, decode the JSON, take the content;
* client: ``StepJudge.judge()`` (segmentation, prompt rendering, the HTTP client with its limits and
  retries, verdict parsing, RTS and graded value; cache off so every call reaches the server).

Both send the identical body (``OpenAIChatBackend.payload``); the answer is constrained to one
``VERDICT`` line (vLLM structured outputs), so both do the same server work. Prints requests/s, median
latency and the overhead ratio client / raw wall time (target ≤ 1.05), medians over ``--rounds`` (raw and
client alternate, order flipped each round), and the client's own work per call without the network.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from reward.judge import build_judge  # noqa: E402
from reward.judge.benchmark import arith_samples  # noqa: E402

CONCURRENCY = (1, 4, 16)
VERDICT_REGEX = {"structured_outputs": {"regex": "VERDICT: (none|[1-9])"}}


def judge_config(base_url: str, concurrency: int) -> dict:
    return {"backend": "openai", "cache_size": 0,
            "openai": {"base_url": base_url, "model": "judge", "max_tokens": 16, "max_concurrency": concurrency,
                       "extra_body": VERDICT_REGEX}}


async def raw_round(base_url: str, bodies: list[dict], concurrency: int) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(body):
            async with gate:
                started = time.perf_counter()
                async with session.post(f"{base_url}/chat/completions", json=body) as response:
                    data = await response.json()
                data["choices"][0]["message"]["content"]
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*[one(body) for body in bodies])
        return time.perf_counter() - started, latencies


async def client_round(base_url: str, requests: list, concurrency: int) -> tuple[float, list[float], int]:
    judge = build_judge(judge_config(base_url, concurrency))
    gate = asyncio.Semaphore(concurrency)  # the same caller-side gate as the raw round: latency excludes queueing

    async def one(request):
        async with gate:
            return await judge.judge(request)

    started = time.perf_counter()
    verdicts = await asyncio.gather(*[one(request) for request in requests])
    wall = time.perf_counter() - started
    await judge.aclose()
    failures = sum(1 for v in verdicts if v.failure not in (None, "out_of_range"))
    return wall, [v.latency_s for v in verdicts], failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base-url", default=None, help="a running server (model name 'judge'); else start one")
    args = parser.parse_args()

    server = None
    base_url = args.base_url
    if base_url is None:
        from data_prep.models import ensure_smollm2
        from reward.judge.cpu_server import CPUJudgeServer

        server = CPUJudgeServer(ensure_smollm2(), served_model_name="judge").start()
        base_url = server.base_url
    try:
        requests = [sample.request for sample in arith_samples(args.requests, seed=7)]
        builder = build_judge(judge_config(base_url, 1)).backend
        bodies = [builder.payload(builder.prompt(r, builder.segment(r))) for r in requests]
        asyncio.run(raw_round(base_url, bodies, 4))  # warm-up (prefix cache, connections)
        asyncio.run(client_round(base_url, requests, 4))
        print(f"{'conc':>4} {'raw req/s':>10} {'client req/s':>13} {'raw p50 s':>10} {'client p50 s':>13} "
              f"{'ratio':>6} {'failures':>8}")
        for concurrency in CONCURRENCY:
            raw_walls, client_walls, raw_lat, client_lat, failures = [], [], [], [], 0
            for round_index in range(args.rounds):
                # alternate which goes first, so drift in machine load does not favour one side
                for side in (("raw", "client") if round_index % 2 == 0 else ("client", "raw")):
                    if side == "raw":
                        wall, latencies = asyncio.run(raw_round(base_url, bodies, concurrency))
                        raw_walls.append(wall)
                        raw_lat += latencies
                    else:
                        wall, latencies, failed = asyncio.run(client_round(base_url, requests, concurrency))
                        client_walls.append(wall)
                        client_lat += latencies
                        failures += failed
            raw_wall, client_wall = statistics.median(raw_walls), statistics.median(client_walls)
            print(f"{concurrency:>4} {len(bodies) / raw_wall:>10.2f} {len(bodies) / client_wall:>13.2f} "
                  f"{statistics.median(raw_lat):>10.3f} {statistics.median(client_lat):>13.3f} "
                  f"{client_wall / raw_wall:>6.3f} {failures:>8}", flush=True)
        per_call_ms = client_work_ms(requests)
        print(f"client-side work per call (segment, render, payload, parse, grade; no network): {per_call_ms:.3f} ms")
    finally:
        if server is not None:
            server.stop()
    return 0


def client_work_ms(requests: list, repeats: int = 200) -> float:
    """Milliseconds of the judge's own work per call, without the network: a noise-free bound on overhead
    (``ratio ≤ 1 + work / raw latency``) for machines too busy to time the HTTP comparison precisely."""
    from reward.judge.grading import graded_value, step_rts
    from reward.judge.prompt import parse_verdict

    backend = build_judge(judge_config("http://127.0.0.1:1/v1", 1)).backend
    started = time.perf_counter()
    for _ in range(repeats):
        for request in requests:
            segmentation = backend.segment(request)
            backend.payload(backend.prompt(request, segmentation))
            k = parse_verdict("VERDICT: 1", len(segmentation.steps))
            graded_value(step_rts(k, len(segmentation.steps)))
    return (time.perf_counter() - started) * 1000 / (repeats * len(requests))


if __name__ == "__main__":
    sys.exit(main())
