"""A small async JSON-over-HTTP client with a concurrency limit, per-attempt timeouts and retries.

Shared by the OpenAI-compatible, router and PRM-server backends. Failures become
:class:`reward.judge.failures.JudgeFailure` with a precise reason; nothing else escapes.

Retry policy: connection errors, timeouts and HTTP 408/429/5xx are retried up to ``max_retries`` times;
the wait before retry ``i`` (0-based) is ``min(backoff_max_s, backoff_s · 2^i) · U(0.5, 1)`` (jitter, so
many workers that failed together do not retry together). Other HTTP errors and malformed bodies are
final. The API key (read once from the environment variable named in the config) is only ever placed in
the ``Authorization`` header. A server or proxy may echo request headers back (in an error page, or inside
a reply); so every text that comes from the server is redacted (:class:`Redactor`) before it is kept in a
:class:`JudgeFailure` detail, an exception message or a log record, and before a decoded reply is handed
to the backend: the key in the forms it may come back in (as sent, URL-encoded, in any letter case) and
any ``Bearer <token>`` become :data:`REDACTED`. Error bodies are redacted whole, then cut to
:data:`ERROR_BODY_CHARS`, so a key that straddles the cut does not leak its first half.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp

from reward.judge.failures import BACKEND_ERROR, CONNECTION, HTTP_ERROR, TIMEOUT, JudgeFailure

logger = logging.getLogger(__name__)

#: HTTP statuses worth retrying: request timeout, rate limit, and server-side errors.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: Longest slice of a server's error body quoted in a failure detail (characters, after redaction).
ERROR_BODY_CHARS = 200

#: What replaces the API key (and any ``Bearer`` token) in text from the server.
REDACTED = "[REDACTED]"

# A bearer credential in an echoed ``Authorization`` header, whatever its value.
_BEARER_TOKEN = re.compile(r"\bbearer\s+[^\s\"'<>,;]+", re.IGNORECASE)


class Redactor:
    """Replaces a secret in text from a server by :data:`REDACTED`.

    The forms replaced: the secret as sent, URL-encoded (``quote`` and ``quote_plus``, as a proxy that logs
    a request line or form would echo it), JSON-escaped, each in any letter case; and in texts
    (:meth:`text`) any ``Bearer <token>``. Linear in the text's length (one regex alternation).

    Args:
        secret: the API key, or None (then only ``Bearer`` tokens are replaced).
    """

    def __init__(self, secret: str | None) -> None:
        forms = set()
        if secret:
            forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), json.dumps(secret)[1:-1]}
        longest_first = sorted(forms, key=len, reverse=True)  # a longer form must not be cut by a shorter one
        self._secret = re.compile("|".join(map(re.escape, longest_first)), re.IGNORECASE) if forms else None

    def __repr__(self) -> str:  # never show the pattern (it spells the key)
        return "Redactor()"

    def text(self, text: str) -> str:
        """``text`` with the secret and every ``Bearer`` token replaced."""
        if self._secret is not None:
            text = self._secret.sub(REDACTED, text)
        return _BEARER_TOKEN.sub(f"Bearer {REDACTED}", text)

    def decoded(self, value: Any) -> Any:
        """A decoded JSON value with the secret replaced in every string (keys included); a JSON string can
        spell the key with ``\\u`` escapes that only decoding reveals. ``Bearer`` words are left alone here:
        this is the judge's reply, and only the key itself is a secret."""
        if self._secret is None:
            return value
        if isinstance(value, str):
            return self._secret.sub(REDACTED, value)
        if isinstance(value, list):
            return [self.decoded(item) for item in value]
        if isinstance(value, dict):
            return {self.decoded(key): self.decoded(item) for key, item in value.items()}
        return value


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
        self.redactor = Redactor(api_key)
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
        """POST ``payload`` and return the decoded JSON body, the API key redacted from it (see the module
        docstring); raise :class:`JudgeFailure` on failure."""
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
                    logger.debug("judge request to %s failed (attempt %d): %s", self.redactor.text(url), attempt + 1,
                                 last)
            assert last is not None
            raise last

    def _quote(self, body: str) -> str:
        # Redact the whole body first: a key straddling the cut would otherwise leak its first part.
        return self.redactor.text(body)[:ERROR_BODY_CHARS]

    def _failure(self, reason: str, detail: str) -> JudgeFailure:
        # Details quote the URL and the server's text: both pass the redactor.
        return JudgeFailure(reason, self.redactor.text(detail))

    async def _attempt(self, session: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> Any:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with session.post(url, json=payload, timeout=timeout) as response:
                body = await response.text(errors="replace")  # undecodable bytes are the malformed-body case
                if response.status >= 400:
                    failure = self._failure(HTTP_ERROR, f"HTTP {response.status} from {url}: {self._quote(body)}")
                    if response.status in RETRYABLE_STATUSES:
                        raise _Retryable(failure)
                    raise failure
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
            raise _Retryable(self._failure(TIMEOUT, f"no answer from {url} within {self.timeout_s:g} s")) from None
        except (aiohttp.ClientConnectionError, OSError) as error:
            raise _Retryable(self._failure(CONNECTION, f"{type(error).__name__} for {url}")) from None
        except aiohttp.ClientError as error:
            raise self._failure(BACKEND_ERROR, f"{type(error).__name__} for {url}") from None
        try:
            return self.redactor.decoded(json.loads(body))
        except ValueError:
            raise self._failure(BACKEND_ERROR, f"malformed JSON from {url}: {self._quote(body)!r}") from None

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
