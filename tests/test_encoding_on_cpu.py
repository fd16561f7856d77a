"""The SGPO reward encoding (reward/encoding.py): its bands, their boundaries, and what it refuses.

The band layout is the documented contract between the reward side and the estimator:
``1`` correct, ``c · clip(g)`` in ``(0, c)`` judged wrong, ``0`` not judged; anything else is refused.
"""

from __future__ import annotations

import math

import pytest
import torch

from reward.encoding import GRADED_CEILING, GRADED_FLOOR, decode_rewards, encode_reward, validate_band

BAND = 0.5


@pytest.mark.parametrize("graded_value", [1.5, 1.0 + 1e-9, -0.1, -1e-9, math.nan, math.inf])
def test_a_graded_value_outside_the_unit_interval_is_refused_and_named(graded_value):
    with pytest.raises(ValueError, match=r"graded value must lie in \[0, 1\], got " + repr(graded_value)):
        encode_reward(False, graded_value, BAND)


@pytest.mark.parametrize("graded_value", [0.0, 1.0])
def test_the_ends_of_the_unit_interval_encode_strictly_inside_the_band(graded_value):
    reward = encode_reward(False, graded_value, BAND)
    assert 0.0 < reward < BAND
    decoded = decode_rewards(torch.tensor([reward], dtype=torch.float32), BAND)
    assert bool(decoded.judged[0]) and not bool(decoded.correct[0])


def test_a_correct_response_encodes_as_one_whatever_its_graded_value():
    assert encode_reward(True, None, BAND) == 1.0
    assert encode_reward(True, 0.3, BAND) == 1.0


def test_encoding_refuses_a_bad_band_even_for_a_correct_response():
    with pytest.raises(ValueError, match="algorithm.sgpo.reward_band"):
        encode_reward(True, None, 1.0)


@pytest.mark.parametrize("band", [0.0, 1.0, -0.5, 1.5, math.nan])
def test_a_band_outside_the_open_unit_interval_is_refused_and_named(band):
    with pytest.raises(ValueError, match=r"algorithm.sgpo.reward_band must lie strictly between 0 and 1"):
        validate_band(band)


@pytest.mark.parametrize("band", ["half", None, [0.5]])
def test_a_band_that_is_not_a_number_is_refused_with_its_key(band):
    with pytest.raises(ValueError, match=r"my.key must be a number in \(0, 1\), got " + repr(band).replace("[", r"\[")):
        validate_band(band, key="my.key")


def test_a_band_given_as_text_is_read_as_a_number():
    assert validate_band("0.25") == 0.25
    assert isinstance(validate_band(1e-3), float)


@pytest.mark.parametrize(
    "reward",
    [BAND, BAND + 1e-3, 0.99, 1.0 - 1e-6, -1e-6, -1.0, math.nan],
    ids=["exactly-c", "just-above-c", "0.99", "just-below-1", "just-below-0", "-1", "nan"],
)
def test_decoding_refuses_what_encode_reward_never_produces(reward):
    scores = torch.tensor([1.0, reward, 0.0], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"1 of 3 rewards are not SGPO-encoded") as refused:
        decode_rewards(scores, BAND)
    message = str(refused.value)
    assert f"(0, {BAND})" in message, "the message must state the valid judged band"
    assert f"e.g. {reward!r}" in message, "the message must show the offending reward"
    assert "reward.reward_manager.name=sgpo" in message and "algorithm.sgpo.reward_band" in message, "and the fix"


def test_decoding_reads_each_band():
    just_below_band = BAND * GRADED_CEILING
    scores = torch.tensor([1.0, 2.0, 0.0, BAND * GRADED_FLOOR, 0.1, just_below_band], dtype=torch.float64)
    correct, judged, graded = decode_rewards(scores, BAND)
    assert correct.tolist() == [True, True, False, False, False, False]
    assert judged.tolist() == [False, False, False, True, True, True]
    torch.testing.assert_close(graded, torch.tensor([1.0, 1.0, 0.0, GRADED_FLOOR, 0.2, GRADED_CEILING], dtype=torch.float64))


def test_encode_then_decode_returns_the_graded_value_in_float32():
    values = [0.0, 0.25, 0.5, 0.75, 1.0]
    scores = torch.tensor([encode_reward(False, g, BAND) for g in values], dtype=torch.float32)
    decoded = decode_rewards(scores, BAND)
    assert bool(decoded.judged.all())
    torch.testing.assert_close(decoded.graded, torch.tensor(values, dtype=torch.float32), atol=2e-6, rtol=0)
