"""Judge server throughput against concurrency, with the CPU main job's judge settings: the judge row of
the step-time model (recipe/sgpo/overhead, docs/judge_overhead.md).

    .venv/bin/python tests/benchmarks/bench_judge_throughput.py [--concurrency 1 4 16 32] [--out FILE]
                                                                 [--base-url URL --model NAME --max-tokens N]

Starts the CPU vLLM server with SmolLM2-135M-Instruct, as ``run_scripts/cpu_demo.sh --judge llm`` does
(unless ``--base-url`` points at a running one: a GPU judge server, with ``--model`` its served name),
renders judge prompts of synthetic arithmetic solutions with the project's judge (prompt template, step
split), and sends them with the demo's answer cap and temperature
(``recipe.sgpo.cpu_demo.LLM_JUDGE_MAX_TOKENS`` / ``_TEMPERATURE``, no structured output: the server
writes until its verdict or the cap). At each concurrency ``c`` it sends
``max(--min-requests, 2·c)`` requests, at most ``c`` in flight, and measures::

    tokens_per_s = Σ completion_tokens / wall seconds          (the server's aggregate output rate)

Prompt processing is folded into that rate (the prompts are the real ones), so the model row gets
``prefill_cost = 0``. Prints one line per concurrency; ``--out`` writes the judge row (throughput table,
mean output and prompt tokens, the command, the machine and the date) for ``--inputs`` files of
``python -m recipe.sgpo.overhead``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from recipe.sgpo.cpu_demo import JUDGE_MODEL_NAME, LLM_JUDGE_MAX_TOKENS, LLM_JUDGE_TEMPERATURE  # noqa: E402
from recipe.sgpo.offline.store import write_json  # noqa: E402
from reward.judge import build_judge  # noqa: E402
from reward.judge.benchmark import arith_samples  # noqa: E402

DEFAULT_CONCURRENCY = (1, 4, 16, 32)


def demo_judge_config(base_url: str, model: str = JUDGE_MODEL_NAME, max_tokens: int = LLM_JUDGE_MAX_TOKENS) -> dict:
    """The judge settings of the CPU main job's ``--judge llm`` (recipe/sgpo/cpu_demo.py); on another
    server, its served model name and answer cap."""
    return {"backend": "openai", "cache_size": 0,
            "openai": {"base_url": base_url, "model": model, "max_tokens": max_tokens,
                       "temperature": LLM_JUDGE_TEMPERATURE}}


async def measure(base_url: str, bodies: list[dict], concurrency: int) -> dict:
    """Send ``bodies`` with at most ``concurrency`` in flight; aggregate output rate and token counts."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    completion_tokens: list[int] = []
    prompt_tokens: list[int] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(body: dict) -> None:
            async with gate:
                started = time.perf_counter()
                async with session.post(f"{base_url}/chat/completions", json=body) as response:
                    response.raise_for_status()
                    data = await response.json()
                latencies.append(time.perf_counter() - started)
                completion_tokens.append(int(data["usage"]["completion_tokens"]))
                prompt_tokens.append(int(data["usage"]["prompt_tokens"]))

        started = time.perf_counter()
        await asyncio.gather(*[one(body) for body in bodies])
        wall = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": len(bodies), "wall_s": wall,
            "tokens_per_s": sum(completion_tokens) / wall, "latency_p50_s": statistics.median(latencies),
            "completion_tokens_mean": statistics.fmean(completion_tokens),
            "prompt_tokens_mean": statistics.fmean(prompt_tokens)}


def judge_row(points: list[dict], command: str) -> dict:
    """The judge entry of an overhead-model inputs file, from the measured points."""
    requests = sum(p["requests"] for p in points)
    return {
        "model": "the judge server measured (by default SmolLM2-135M-Instruct on the CPU vLLM server)",
        "replicas": 1,
        "output_tokens": sum(p["completion_tokens_mean"] * p["requests"] for p in points) / requests,
        "prompt_overhead_tokens": sum(p["prompt_tokens_mean"] * p["requests"] for p in points) / requests,
        "prefill_cost": 0.0,
        "throughput": {"concurrency": [p["concurrency"] for p in points],
                       "tokens_per_s": [round(p["tokens_per_s"], 2) for p in points]},
        "measured": {"command": command, "points": points, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                     "date": datetime.date.today().isoformat()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(DEFAULT_CONCURRENCY))
    parser.add_argument("--min-requests", type=int, default=4, help="requests at each concurrency, at least")
    parser.add_argument("--base-url", default=None, help="a running server (model name 'judge'); else start one")
    parser.add_argument("--model", default=JUDGE_MODEL_NAME, help="served model name (with --base-url)")
    parser.add_argument("--max-tokens", type=int, default=LLM_JUDGE_MAX_TOKENS,
                        help="answer cap (the CPU main job's by default; a reasoning judge needs thousands)")
    parser.add_argument("--out", type=Path, default=None, help="write the judge row (JSON) here")
    args = parser.parse_args(argv)
    if min(args.concurrency) < 1 or args.concurrency != sorted(set(args.concurrency)):
        parser.error(f"--concurrency must be increasing and at least 1, got {args.concurrency}")
    command = " ".join(["tests/benchmarks/bench_judge_throughput.py", *(argv if argv is not None else sys.argv[1:])])

    server = None
    base_url = args.base_url
    if base_url is None:
        from data_prep.models import ensure_smollm2
        from reward.judge.cpu_server import CPUJudgeServer

        server = CPUJudgeServer(ensure_smollm2(), served_model_name=JUDGE_MODEL_NAME).start()
        base_url = server.base_url
    try:
        backend = build_judge(demo_judge_config(base_url, args.model, args.max_tokens)).backend
        most = max(args.min_requests, 2 * max(args.concurrency))
        requests = [sample.request for sample in arith_samples(most, seed=11)]
        bodies = [backend.payload(backend.prompt(r, backend.segment(r))) for r in requests]
        asyncio.run(measure(base_url, bodies[:2], 2))  # warm-up: connections, first compilation
        print(f"{'conc':>4} {'requests':>8} {'wall s':>8} {'out tok/s':>10} {'p50 s':>7} {'out tok':>8} {'prompt tok':>10}")
        points = []
        for concurrency in args.concurrency:
            point = asyncio.run(measure(base_url, bodies[: max(args.min_requests, 2 * concurrency)], concurrency))
            points.append(point)
            print(f"{concurrency:>4} {point['requests']:>8} {point['wall_s']:>8.1f} {point['tokens_per_s']:>10.1f} "
                  f"{point['latency_p50_s']:>7.2f} {point['completion_tokens_mean']:>8.1f} "
                  f"{point['prompt_tokens_mean']:>10.1f}", flush=True)
    finally:
        if server is not None:
            server.stop()
    if args.out is not None:
        write_json(args.out, judge_row(points, command))
        print(f"judge row written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
