"""A small async JSON-over-HTTP client with a concurrency limit, per-attempt timeouts and retries.

Shared by the OpenAI-compatible, router and PRM-server backends. Failures become
:class:`reward.judge.failures.JudgeFailure` with a precise reason; nothing else escapes.

Retry policy: connection errors, timeouts and HTTP 408/429/5xx are retried up to ``max_retries`` times;
the wait before retry ``i`` (0-based) is ``min(backoff_max_s, backoff_s · 2^i) · U(0.5, 1)`` (jitter, so
many workers that failed together do not retry together). Other HTTP errors and malformed bodies are
final. The API key (read once from the environment variable named in the config) is only ever placed in
the ``Authorization`` header; it is never part of an error message or a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

import aiohttp

from reward.judge.failures import BACKEND_ERROR, CONNECTION, HTTP_ERROR, TIMEOUT, JudgeFailure

logger = logging.getLogger(__name__)

#: HTTP statuses worth retrying: request timeout, rate limit, and server-side errors.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: Longest slice of a server's error body quoted in a failure detail.
ERROR_BODY_CHARS = 200


class HTTPClient:
    """POSTs JSON to ``{base_url}{path}``; one aiohttp session and semaphore per event loop.

    Args:
        base_url: endpoint root (no trailing slash needed).
        api_key: Bearer token or None.
        max_concurrency: most requests in flight at once (per event loop).
        timeout_s: bound of one attempt, seconds.
        max_retries: further attempts after a retryable failure.
        backoff_s: first retry wait, seconds (doubling, capped by ``backoff_max_s``, with jitter).
        backoff_max_s: cap of one wait, seconds.
    """

    def __init__(self, base_url: str, *, api_key: str | None, max_concurrency: int, timeout_s: float,
                 max_retries: int, backoff_s: float, backoff_max_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._per_loop: dict[int, tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession, asyncio.Semaphore]] = {}

    def __repr__(self) -> str:  # never show headers (the key)
        return f"HTTPClient({self.base_url!r}, max_concurrency={self.max_concurrency})"

    def _session(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        entry = self._per_loop.get(id(loop))
        if entry is None or entry[0] is not loop or entry[1].closed:
            connector = aiohttp.TCPConnector(limit=self.max_concurrency, force_close=False)
            session = aiohttp.ClientSession(connector=connector, headers=self._headers)
            entry = (loop, session, asyncio.Semaphore(self.max_concurrency))
            self._per_loop[id(loop)] = entry
        return entry[1], entry[2]

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based), jitter included."""
        nominal = min(self.backoff_max_s, self.backoff_s * (2**attempt))
        return nominal * random.uniform(0.5, 1.0)

    async def post_json(self, path: str, payload: dict[str, Any]) -> Any:
        """POST ``payload`` and return the decoded JSON body; raise :class:`JudgeFailure` on failure."""
        session, semaphore = self._session()
        url = f"{self.base_url}{path}"
        async with semaphore:
            last: JudgeFailure | None = None
            for attempt in range(self.max_retries + 1):
                if attempt:
                    await asyncio.sleep(self.backoff(attempt - 1))
                try:
                    return await self._attempt(session, url, payload)
                except _Retryable as retryable:
                    last = retryable.failure
                    logger.debug("judge request to %s failed (attempt %d): %s", url, attempt + 1, last)
            assert last is not None
            raise last

    async def _attempt(self, session: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> Any:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with session.post(url, json=payload, timeout=timeout) as response:
                body = await response.text()
                if response.status >= 400:
                    failure = JudgeFailure(HTTP_ERROR, f"HTTP {response.status} from {url}: {body[:ERROR_BODY_CHARS]}")
                    if response.status in RETRYABLE_STATUSES:
                        raise _Retryable(failure)
                    raise failure
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
            raise _Retryable(JudgeFailure(TIMEOUT, f"no answer from {url} within {self.timeout_s:g} s")) from None
        except (aiohttp.ClientConnectionError, OSError) as error:
            raise _Retryable(JudgeFailure(CONNECTION, f"{type(error).__name__} for {url}")) from None
        except aiohttp.ClientError as error:
            raise JudgeFailure(BACKEND_ERROR, f"{type(error).__name__} for {url}") from None
        try:
            return json.loads(body)
        except ValueError:
            raise JudgeFailure(BACKEND_ERROR, f"malformed JSON from {url}: {body[:ERROR_BODY_CHARS]!r}") from None

    async def aclose(self) -> None:
        """Close this loop's session (others are closed when their loop ends). Idempotent."""
        entries, self._per_loop = list(self._per_loop.values()), {}
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, session, _ in entries:
            if loop is current and not session.closed:
                await session.close()


class _Retryable(Exception):
    def __init__(self, failure: JudgeFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure
