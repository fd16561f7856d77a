"""A real OpenAI-style HTTP endpoint that tests run themselves, to cause judge faults for real."""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import quote

from aiohttp import web

from reward.judge.backends.http import ERROR_BODY_CHARS
from reward.judge.cpu_server import free_port


#: ``hashed`` mode: one response in this many gets an answer without a verdict (a parse failure).
HASHED_FAILURE_EVERY = 5


def hashed_verdict(body: bytes) -> str:
    """A verdict that depends only on the request: from a hash of the prompt, one of the ``K`` steps
    numbered in it, "none", or (one in :data:`HASHED_FAILURE_EVERY`) no verdict at all."""
    import hashlib
    import json

    prompt = json.loads(body)["messages"][-1]["content"]
    steps = max(1, prompt.count('<step number="'))
    digest = int(hashlib.sha256(prompt.encode("utf-8")).hexdigest(), 16)
    if digest % HASHED_FAILURE_EVERY == 0:
        return "I cannot decide."
    choice = (digest // HASHED_FAILURE_EVERY) % (steps + 1)
    return "VERDICT: none" if choice == steps else f"VERDICT: {choice + 1}"


class MisbehavingEndpoint:
    """An OpenAI-style endpoint run by the test: ``/{mode}/v1/chat/completions`` misbehaves by ``mode``."""

    def __init__(self):
        self.port = free_port()
        self.hits: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/v1"

    async def handle(self, http_request: web.Request) -> web.StreamResponse:
        mode = http_request.match_info["mode"]
        self.hits[mode] = self.hits.get(mode, 0) + 1
        body = await http_request.read()

        def reply(text):
            return web.json_response({"choices": [{"message": {"role": "assistant", "content": text}}]})

        if mode.startswith("echo"):  # a server or proxy that echoes the request's headers back
            return self.echo(mode, http_request)

        if mode == "slow":
            await asyncio.sleep(30)
            return reply("VERDICT: 1")
        if mode == "error500":
            return web.Response(status=500, text="internal error")
        if mode == "error400":
            return web.Response(status=400, text='{"error": "bad request"}')
        if mode == "garbage":
            return web.Response(status=200, text="<html>not json</html>")
        if mode == "empty":
            return web.json_response({"choices": []})
        if mode == "noverdict":
            return reply("I think the second step is wrong, but who knows.")
        if mode == "range":
            return reply("Step 42 is wrong.\nVERDICT: 42")
        if mode == "undecodable":  # bytes that are not the UTF-8 the header declares
            return web.Response(status=200, body=b"\xff\xfe{not utf-8", content_type="application/json",
                                charset="utf-8")
        if mode == "drop":
            http_request.transport.close()
            return web.Response(status=200)
        if mode == "step2":  # a well-behaved judge that always finds the first error at step 2
            return reply("VERDICT: 2")
        if mode == "hashed":  # a judge whose verdicts vary by response: spread, and some failures
            return reply(hashed_verdict(body))
        if mode == "flaky":  # fails twice, then answers: retries must get through
            if self.hits[mode] <= 2:
                return web.Response(status=503, text="busy")
            return reply("VERDICT: 2")
        return reply("VERDICT: none")

    @staticmethod
    def echo(mode: str, http_request: web.Request) -> web.Response:
        """Reply with the request headers (``Authorization: Bearer <key>``) quoted in the body, by ``mode``."""
        authorization = http_request.headers.get("Authorization", "")
        others = [f"{name}: {value}" for name, value in http_request.headers.items() if name != "Authorization"]
        headers = "\n".join([f"Authorization: {authorization}", *others])  # the key first: inside any cut
        if mode == "echo500":  # an error page that dumps the request
            return web.Response(status=500, text=f"upstream failed for the request:\n{headers}")
        if mode == "echogarbage":  # a 200 that is not JSON (a proxy's HTML page)
            return web.Response(status=200, text=f"<html><pre>{headers}</pre></html>")
        if mode == "echocut":  # the key straddles the cut of quoted error bodies
            key = authorization.removeprefix("Bearer ")
            return web.Response(status=400, text="x" * (ERROR_BODY_CHARS - len(key) // 2) + key)
        if mode == "echoencoded":  # URL-encoded (a logged request line) and upper-cased (a shouting proxy)
            return web.Response(status=400, text=f"GET /?auth={quote(authorization, safe='')} {authorization.upper()}")
        if mode == "echoreply":  # a valid reply whose text spells the key in JSON \\u escapes
            escaped = "".join(f"\\u{ord(char):04x}" for char in authorization)
            body = '{"choices": [{"message": {"role": "assistant", "content": "I was sent ' + escaped + '"}}]}'
            return web.Response(status=200, text=body, content_type="application/json")
        if mode == "echoshape":  # valid JSON of the wrong shape, quoted by the backend
            return web.json_response({"choices": f"headers {headers}"})
        return web.Response(status=404, text=f"unknown echo mode {mode}")

    def _serve(self):
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{mode}/v1/chat/completions", self.handle)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
