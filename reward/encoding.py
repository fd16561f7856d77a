"""The SGPO reward encoding: one scalar per response that carries both correctness and the graded value.

verl hands a custom advantage estimator only the token-level rewards (their sum is one scalar per
response), never the reward manager's extra info. So the scalar itself must tell the estimator two
facts: *is the response correct?* and *how far did a wrong response get?* We encode them in bands::

    r = 1                      correct response                      (o = 1)
    r = c · clip(g, g₀, g₁)    wrong response, judged, graded value g ∈ [0, 1]
    r = 0                      wrong response, not judged (judge failure, time-out, incomplete group,
                               not scheduled, judge off)

with a band ``0 < c < 1`` (``algorithm.sgpo.reward_band``) and ``g₀ = GRADED_FLOOR``,
``g₁ = GRADED_CEILING``. Decoding is then unambiguous:

    correct              ⇔  r ≥ 1
    wrong, judged        ⇔  0 < r < c,   g = r / c
    wrong, not judged    ⇔  r = 0

"Not judged" and "judged with g = 0" must never meet: the estimator leaves a not-judged response out of
its group's statistics and gives it zero advantage, while a judged ``g = 0`` (the linear map's "wrong from
the first step") is the lowest graded value and a real signal. The floor ``g₀`` keeps the second strictly
above 0. A reward of exactly 0 is also what any binary reward manager gives a wrong answer, so binary
rewards decode as "nothing judged" and the estimator reduces to verl's ``grpo``.

Anything in ``[c, 1)`` or below 0 is not an SGPO reward (for example a reward manager that adds a
format penalty); :func:`decode_rewards` refuses it instead of guessing.

The reward side (``reward/``) calls :func:`encode_reward`; the estimator (``recipe/sgpo/``) calls
:func:`decode_rewards`. Nothing else may build or read the band.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

#: Where the band ``c`` is set (the estimator's key; the reward manager reads the same key).
BAND_KEY = "algorithm.sgpo.reward_band"

#: The band's default when a config leaves the key out (the shipped yaml sets the same value).
DEFAULT_REWARD_BAND = 0.5

#: Encoded reward of a correct response. Correctness is decided by ``r >= CORRECT_REWARD``.
CORRECT_REWARD = 1.0

#: Encoded reward of a wrong response that was not judged or whose judge call failed: no graded value.
UNJUDGED_REWARD = 0.0

#: Graded values are raised to at least this before encoding, so that a judged ``g = 0`` encodes as
#: ``c · 1e-6 > 0`` (representable in float32 for any band) and never as the not-judged 0. Decoded ``g``
#: is therefore at least ``1e-6``; the difference is far below any judge's resolution.
GRADED_FLOOR = 1e-6

#: Graded values are capped here before encoding, so that ``c · g`` stays strictly below ``c``
#: even after verl stores rewards as float32 (relative spacing about 6e-8). Decoded ``g`` is
#: therefore at most ``1 − 1e-6``; the difference is far below any judge's resolution.
GRADED_CEILING = 1.0 - 1e-6


def validate_band(reward_band: float, key: str = BAND_KEY) -> float:
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
        ``1`` if correct, ``c · clip(g, GRADED_FLOOR, GRADED_CEILING)`` if judged (strictly inside
        ``(0, c)``), ``0`` if not judged.
    """
    band = validate_band(reward_band)
    if correct:
        return CORRECT_REWARD
    if graded_value is None:
        return UNJUDGED_REWARD
    g = float(graded_value)
    if not 0.0 <= g <= 1.0:  # NaN fails this test too
        raise ValueError(f"graded value must lie in [0, 1], got {graded_value!r}")
    return band * min(max(g, GRADED_FLOOR), GRADED_CEILING)


class DecodedRewards(NamedTuple):
    """The two facts an encoded reward carries, per response (all tensors of shape ``(bs,)``).

    Attributes:
        correct: ``r ≥ 1``.
        judged: wrong and judged, ``0 < r < c``: ``graded`` holds its ``g``.
        graded: ``1`` for correct responses, ``g = r / c`` for judged wrong ones, ``0`` for not-judged
            ones (a placeholder: read it only where ``correct | judged``).
    """

    correct: torch.Tensor
    judged: torch.Tensor
    graded: torch.Tensor


def decode_rewards(scores: torch.Tensor, reward_band: float) -> DecodedRewards:
    """Decode a batch of encoded rewards (one scalar per response).

    Args:
        scores: shape ``(bs,)``, the per-response sums of verl's ``token_level_rewards``.
        reward_band: the band ``c``.

    Returns:
        :class:`DecodedRewards` ``(correct, judged, graded)``.

    Raises:
        ValueError: when some score lies outside ``{≥ 1} ∪ [0, c)`` (NaN included), i.e. was not
            produced by :func:`encode_reward`; the message says how many and shows an example.
    """
    band = validate_band(reward_band)
    correct = scores >= CORRECT_REWARD
    foreign = ~correct & ((scores < UNJUDGED_REWARD) | (scores >= band) | torch.isnan(scores))
    if bool(foreign.any()):
        example = scores[foreign][0].item()
        raise ValueError(
            f"{int(foreign.sum())} of {scores.numel()} rewards are not SGPO-encoded (e.g. {example!r}): "
            f"expected 1 for a correct response, 0 for a wrong one that was not judged, or a value in "
            f"(0, {band}) for a judged wrong one. "
            "Use the SGPO reward manager (reward.reward_manager.name=sgpo), keep "
            "algorithm.use_kl_in_reward=false, and make algorithm.sgpo.reward_band match the reward side."
        )
    judged = ~correct & (scores > UNJUDGED_REWARD)
    graded = torch.where(correct, torch.ones_like(scores), torch.where(judged, scores / band, torch.zeros_like(scores)))
    return DecodedRewards(correct, judged, graded)
