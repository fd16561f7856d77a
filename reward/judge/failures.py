"""Why a verdict is "not judged": the ``Verdict.failure`` reasons, one constant each.

The reward manager counts verdicts by these strings (``sgpo/judge/...`` metrics), so each reason means
one thing only:

========================  ====================================================================================
``timeout``               the backend did not answer within ``openai.timeout_s`` on every attempt, or the whole
                          call passed ``deadline_s`` (waiting for a free connection included)
``connection``            no connection could be made or it broke (server down, port closed, reset)
``http_error``            the server answered with an HTTP error status (after retries for 408/429/5xx)
``empty_response``        the server answered, but with no text (no choices, empty content)
``parse_error``           the judge's text does not end with the required ``VERDICT: <k>|none`` line
``out_of_range``          the verdict names a step outside ``1..K``
``no_steps``              the rule verifier found no arithmetic line and ``rule.no_steps=not_judged``
``backend_error``         anything else (malformed JSON, an exception inside the backend); logged with details
``unfinished``            the backend found no error, but the response stopped at the policy's length limit
                          (``JudgeRequest.finished=False``): "no error in what was written" carries no signal
``no_error_in_prefix``    the backend found no error in the leading steps it was shown, but
                          ``steps.max_judged_chars`` kept the rest of the (finished) response from it
========================  ====================================================================================
"""

from __future__ import annotations

TIMEOUT = "timeout"
CONNECTION = "connection"
HTTP_ERROR = "http_error"
EMPTY_RESPONSE = "empty_response"
PARSE_ERROR = "parse_error"
OUT_OF_RANGE = "out_of_range"
NO_STEPS = "no_steps"
BACKEND_ERROR = "backend_error"
UNFINISHED = "unfinished"
NO_ERROR_IN_PREFIX = "no_error_in_prefix"

#: Every reason, for metrics that report a count per reason.
ALL_REASONS = (TIMEOUT, CONNECTION, HTTP_ERROR, EMPTY_RESPONSE, PARSE_ERROR, OUT_OF_RANGE, NO_STEPS, BACKEND_ERROR,
               UNFINISHED, NO_ERROR_IN_PREFIX)


#: Reasons that are no fault of the judge: it answered "no error found" where that answer carries no signal
#: (unfinished response, or only a prefix shown). Counted apart from failures (``sgpo/judge/no_signal``).
NO_SIGNAL_REASONS = (UNFINISHED, NO_ERROR_IN_PREFIX)


class JudgeFailure(Exception):
    """Raised inside backends; the judge turns it into ``Verdict(judged=False, failure=reason)``.

    ``detail`` is a short human-readable explanation (never a secret: no headers, no keys).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
