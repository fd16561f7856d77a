"""The SGPO reward encoding: one scalar per response that carries both correctness and the graded value.

verl hands a custom advantage estimator only the token-level rewards (their sum is one scalar per
response), never the reward manager's extra info. So the scalar itself must tell the estimator two
facts: *is the response correct?* and *how far did a wrong response get?* We encode them in bands::

    r = 1          correct response                      (o = 1)
    r = c · g      wrong response, judged, graded value g ∈ [0, 1]
    r = 0          wrong response, not judged (or the judge call failed)

with a band ``0 < c < 1`` (``algorithm.sgpo.reward_band``). Decoding is then unambiguous:

    correct  ⇔  r ≥ 1
    g        =  r / c                for r < 1

Anything in ``[c, 1)`` or below 0 is not an SGPO reward (for example a reward manager that adds a
format penalty); :func:`decode_rewards` refuses it instead of guessing.

The reward side (``reward/``) calls :func:`encode_reward`; the estimator (``recipe/sgpo/``) calls
:func:`decode_rewards`. Nothing else may build or read the band.
"""

from __future__ import annotations

import torch

#: Encoded reward of a correct response. Correctness is decided by ``r >= CORRECT_REWARD``.
CORRECT_REWARD = 1.0

#: Encoded reward of a wrong response that was not judged or whose judge call failed.
UNJUDGED_REWARD = 0.0

#: Graded values are capped here before encoding, so that ``c · g`` stays strictly below ``c``
#: even after verl stores rewards as float32 (relative spacing about 6e-8). Decoded ``g`` is
#: therefore at most ``1 − 1e-6``; the difference is far below any judge's resolution.
GRADED_CEILING = 1.0 - 1e-6


def validate_band(reward_band: float, key: str = "algorithm.sgpo.reward_band") -> float:
    """Return ``reward_band`` as a float if ``0 < c < 1``, else raise ``ValueError`` naming ``key``."""
    try:
        band = float(reward_band)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number in (0, 1), got {reward_band!r}") from None
    if not 0.0 < band < 1.0:
        raise ValueError(f"{key} must lie strictly between 0 and 1, got {band}")
    return band


def encode_reward(correct: bool, graded_value: float | None, reward_band: float) -> float:
    """Encode one response's outcome and graded value into the scalar reward verl carries.

    Args:
        correct: whether the final answer matched the reference (``o = 1``).
        graded_value: ``g ∈ [0, 1]`` from the step-wise judge for a wrong response, or ``None``
            when the response was not judged or the judge call failed. Ignored when ``correct``.
        reward_band: the band ``c`` (``0 < c < 1``).

    Returns:
        ``1`` if correct, ``c · g`` if judged, ``0`` otherwise (always ``< c`` for wrong responses).
    """
    band = validate_band(reward_band)
    if correct:
        return CORRECT_REWARD
    if graded_value is None:
        return UNJUDGED_REWARD
    g = float(graded_value)
    if not 0.0 <= g <= 1.0:  # NaN fails this test too
        raise ValueError(f"graded value must lie in [0, 1], got {graded_value!r}")
    return band * min(g, GRADED_CEILING)


def decode_rewards(scores: torch.Tensor, reward_band: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a batch of encoded rewards (one scalar per response).

    Args:
        scores: shape ``(bs,)``, the per-response sums of verl's ``token_level_rewards``.
        reward_band: the band ``c``.

    Returns:
        ``(correct, graded)``: a bool tensor ``r ≥ 1`` and a float tensor with ``1`` for correct
        responses and ``g = r / c ∈ [0, 1)`` for wrong ones.

    Raises:
        ValueError: when some score lies outside ``{≥ 1} ∪ [0, c)``, i.e. was not produced by
            :func:`encode_reward`; the message says how many and shows an example.
    """
    band = validate_band(reward_band)
    correct = scores >= CORRECT_REWARD
    foreign = ~correct & ((scores < UNJUDGED_REWARD) | (scores >= band) | torch.isnan(scores))
    if bool(foreign.any()):
        example = scores[foreign][0].item()
        raise ValueError(
            f"{int(foreign.sum())} of {scores.numel()} rewards are not SGPO-encoded (e.g. {example!r}): "
            f"expected 1 for a correct response or a value in [0, {band}) for a wrong one. "
            "Use the SGPO reward manager (reward.reward_manager.name=sgpo), keep "
            "algorithm.use_kl_in_reward=false, and make algorithm.sgpo.reward_band match the reward side."
        )
    graded = torch.where(correct, torch.ones_like(scores), scores / band)
    return correct, graded

