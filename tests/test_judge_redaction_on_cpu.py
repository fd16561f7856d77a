"""The API key never leaks through text from the server: a real loopback endpoint echoes the request's
headers back (error pages, non-JSON 200s, valid replies, replies of the wrong shape), and neither the
verdict nor any log record (DEBUG included) may contain the key in any form it is echoed in."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import pytest
from judge_endpoints import MisbehavingEndpoint

from reward.judge import JudgeRequest, build_judge
from reward.judge.backends.http import REDACTED, HTTPClient, Redactor
from reward.judge.failures import BACKEND_ERROR, HTTP_ERROR, PARSE_ERROR, JudgeFailure

KEY_ENV = "SGPO_REDACTION_TEST_KEY"
# '/' and '+' make the URL-encoded form differ from the key as sent
KEY = "sk-test-Secret/Key+42abcdefghijklmnop"
REQUEST = JudgeRequest(problem="Compute 17 + 5.", reference_answer="22",
                       response="17 + 5 = 23\n\nSo the answer is \\boxed{23}.")


def leaked_forms() -> list[str]:
    """Every form of the key that must not appear: as sent, URL-encoded, upper- and lower-cased, and each
    half (a cut body must not keep a part)."""
    half = len(KEY) // 2
    return [KEY, quote(KEY, safe=""), KEY.upper(), KEY.lower(), KEY[:half], KEY[half:]]


@pytest.fixture(scope="module")
def endpoint():
    with MisbehavingEndpoint() as server:
        yield server


def judge_once(url: str):
    judge = build_judge({"backend": "openai", "openai": {
        "base_url": url, "model": "judge", "api_key_env": KEY_ENV, "timeout_s": 5, "max_retries": 1,
        "backoff_s": 0.01, "backoff_max_s": 0.02}})

    async def scenario():
        try:
            return await judge.judge(REQUEST)
        finally:
            await judge.aclose()

    return asyncio.run(scenario())


@pytest.mark.parametrize("mode, failure", [
    ("echo500", HTTP_ERROR),  # retried once: the retry's DEBUG line quotes the failure too
    ("echogarbage", BACKEND_ERROR),  # malformed JSON in a 200
    ("echocut", HTTP_ERROR),
    ("echoencoded", HTTP_ERROR),
    ("echoreply", PARSE_ERROR),  # the judge's own text quoted in the parse failure
    ("echoshape", BACKEND_ERROR),  # the backend quotes the decoded reply
])
def test_an_echoed_key_is_redacted_from_verdicts_and_logs(endpoint, mode, failure, monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, KEY)
    caplog.set_level(logging.DEBUG)
    verdict = judge_once(endpoint.url(mode))
    assert not verdict.judged and verdict.failure == failure, verdict
    assert REDACTED in verdict.detail, verdict.detail  # the echo was quoted, with the marker for the key
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert any(REDACTED in record.getMessage() for record in caplog.records)  # and it was logged
    for form in leaked_forms():
        assert form not in verdict.detail and form not in repr(verdict), (form, verdict.detail)
        assert form not in logged and form not in caplog.text, form


def test_redactor_forms_and_bearer_tokens():
    redactor = Redactor(KEY)
    echoed = f"a {KEY} b {quote(KEY, safe='')} c {quote(KEY, safe='').lower()} d authorization: bearer other-token"
    assert redactor.text(echoed) == f"a {REDACTED} b {REDACTED} c {REDACTED} d authorization: Bearer {REDACTED}"
    # a decoded reply: only the key goes, the judge's words (even "bearer") stay
    reply = {"choices": [{"message": {"content": f"the bearer of {KEY}"}}], KEY: 1}
    assert redactor.decoded(reply) == {"choices": [{"message": {"content": f"the bearer of {REDACTED}"}}], REDACTED: 1}
    assert Redactor(None).decoded(reply) is reply
    assert KEY not in repr(redactor)


def test_an_undecodable_body_is_a_backend_error_not_an_escaping_exception(endpoint):
    client = HTTPClient(endpoint.url("undecodable"), api_key=KEY, max_concurrency=1, timeout_s=5, max_retries=0,
                        backoff_s=0.01, backoff_max_s=0.02)

    async def scenario():
        try:
            return await client.post_json("/chat/completions", {"messages": []})
        finally:
            await client.aclose()

    with pytest.raises(JudgeFailure) as caught:  # before: UnicodeDecodeError escaped the client
        asyncio.run(scenario())
    assert caught.value.reason == BACKEND_ERROR and "malformed JSON" in caught.value.detail
