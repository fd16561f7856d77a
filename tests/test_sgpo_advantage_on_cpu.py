"""The `sgpo` advantage estimator: hand-computed cases for every branch, and equality with verl's `grpo`.

Every expected value below is worked out by hand from the formulas in recipe/sgpo/advantage.py
(unbiased group std, ε = 1e-6, band c = 0.5 unless stated).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sgpo_batches import outcome_batch, random_batch
from verl import DataProto
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_adv_estimator_fn
from verl.trainer.ppo.ray_trainer import compute_advantage

from recipe.sgpo.advantage import compute_sgpo_outcome_advantage, group_ids, group_mean_std
from recipe.sgpo.config import SGPOConfig
from reward.encoding import decode_rewards, encode_reward

EPS = 1e-6

#: A wrong response judged with g = 0 (the first step was wrong). Encoded as c · 1e-6 > 0 so that it is
#: never mistaken for a not-judged response (0); hand-computed values below treat it as v = 0 (the 1e-6
#: is far inside the tolerance of ``assert_close``).
G0 = encode_reward(False, 0.0, 0.5)
#: A wrong response that was not judged (judge failure, time-out, incomplete group).
NOT_JUDGED = encode_reward(False, None, 0.5)


def algorithm(**sgpo) -> OmegaConf:
    norm = sgpo.pop("norm_adv_by_std_in_grpo", True)
    return OmegaConf.create({"adv_estimator": "sgpo", "norm_adv_by_std_in_grpo": norm, "sgpo": sgpo})


def sequence_advantages(rewards, uids, lengths=None, **settings) -> torch.Tensor:
    """One advantage per response (its value on the first token), after checking it is constant."""
    token_rewards, mask, index = outcome_batch(rewards, uids, lengths)
    advantages, returns = compute_sgpo_outcome_advantage(token_rewards, mask, index, config=algorithm(**settings))
    assert torch.equal(advantages, returns)
    assert torch.all(advantages[mask == 0] == 0), "padding must carry no advantage"
    per_response = advantages[:, 0]
    assert torch.allclose(advantages, per_response.unsqueeze(-1) * mask)
    return per_response


def test_mixed_group_is_binarised_grpo():
    # x = [1, 0, 0, 0]: mean 0.25, unbiased std 0.5; the judged wrong answer (0.2) counts as 0.
    got = sequence_advantages([1.0, 0.0, 0.2, 0.0], ["a"] * 4)
    expected = torch.tensor([0.75, -0.25, -0.25, -0.25]) / (0.5 + EPS)
    torch.testing.assert_close(got, expected)


def test_all_negative_group_with_spread_is_graded():
    # v = r / c = [0.8, 0.2, 0.2, 0.0]: mean 0.3, deviations [0.5, -0.1, -0.1, -0.3], var 0.36 / 3 = 0.12.
    got = sequence_advantages([0.4, 0.1, 0.1, G0], ["a"] * 4)
    expected = torch.tensor([0.5, -0.1, -0.1, -0.3]) / (math.sqrt(0.12) + EPS)
    torch.testing.assert_close(got, expected)
    assert got[0] > got[1] > got[3], "a response that got further must get the larger advantage"


def test_all_negative_group_without_spread_gets_zero():
    assert torch.all(sequence_advantages([0.2, 0.2, 0.2], ["a"] * 3) == 0)
    # a spread below min_spread (std of v = 1e-4 here, threshold 1e-3) is noise, not signal
    assert torch.all(sequence_advantages([0.2, 0.2 + 0.5e-4, 0.2 - 0.5e-4], ["a"] * 3) == 0)
    # the same spread counts once the threshold is below it
    assert torch.any(sequence_advantages([0.2, 0.2 + 0.5e-4, 0.2 - 0.5e-4], ["a"] * 3, min_spread=1e-5) != 0)


def test_a_spread_exactly_at_min_spread_is_signal():
    """The threshold is inclusive (``std >= min_spread``), as ``sgpo/all_negative/usable_signal_share``
    counts it: a group whose graded values spread by exactly ``min_spread`` is taught."""
    rewards = [0.25, 0.125, G0]  # v = r / c = [0.5, 0.25, g₀]
    values = decode_rewards(torch.tensor(rewards), 0.5).graded
    _, std, _ = group_mean_std(values, torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.bool))
    at_threshold = float(std[0])
    assert torch.all(sequence_advantages(rewards, ["a"] * 3, min_spread=at_threshold) != 0)
    just_above = float(np.nextafter(np.float32(at_threshold), np.float32(1.0)))
    assert torch.all(sequence_advantages(rewards, ["a"] * 3, min_spread=just_above) == 0)


def test_all_negative_unjudged_group_matches_grpo_zero():
    assert torch.all(sequence_advantages([0.0, 0.0, 0.0, 0.0], ["a"] * 4) == 0)


def test_a_judge_failure_is_no_penalty():
    # Three members judged at g = 0.5 and one whose judge call failed: before the fix the failure was
    # read as g = 0 and got the group's most negative advantage ([0.5, 0.5, 0.5, -1.5]). Now the three
    # judged members agree (no spread -> 0) and the failed one carries nothing.
    half = encode_reward(False, 0.5, 0.5)
    assert torch.all(sequence_advantages([half, half, half, NOT_JUDGED], ["a"] * 4) == 0)


def test_not_judged_members_stay_out_of_the_group_statistics():
    # v of the judged = [0.8, 0.2, 0.0]: mean 1/3, deviations [7/15, -2/15, -1/3], var (0.68 - 1/3) / 2.
    got = sequence_advantages([0.4, NOT_JUDGED, 0.1, G0, NOT_JUDGED], ["a"] * 5)
    std = math.sqrt((0.8**2 + 0.2**2 - 3 * (1 / 3) ** 2) / 2)
    expected = torch.tensor([0.8 - 1 / 3, 0.0, 0.2 - 1 / 3, -1 / 3, 0.0]) / (std + EPS)
    expected[[1, 4]] = 0.0
    torch.testing.assert_close(got, expected)
    # the judged members get exactly what they would get without the not-judged ones beside them
    torch.testing.assert_close(got[[0, 2, 3]], sequence_advantages([0.4, 0.1, G0], ["a"] * 3))


def test_fewer_than_two_judged_members_give_the_group_zero():
    # e.g. an incomplete group: early members not judged, one late member judged
    assert torch.all(sequence_advantages([NOT_JUDGED, NOT_JUDGED, 0.4, NOT_JUDGED], ["a"] * 4) == 0)
    assert torch.all(sequence_advantages([G0, NOT_JUDGED], ["a"] * 2) == 0)
    # two judged members with spread are enough
    got = sequence_advantages([G0, NOT_JUDGED, 0.4], ["a"] * 3)
    assert got[2] > 0 > got[0] and got[1] == 0


def test_singleton_groups():
    # verl's grpo gives a lone response mean 0 and std 1; a lone wrong answer has no spread -> 0
    got = sequence_advantages([1.0, 0.3, 0.0], ["correct", "judged", "unjudged"])
    torch.testing.assert_close(got, torch.tensor([1.0 / (1.0 + EPS), 0.0, 0.0]))


def test_negative_scale_applies_only_to_all_negative_groups():
    rewards, uids = [0.4, 0.1, 0.1, G0, 1.0, 0.0], ["n"] * 4 + ["m"] * 2
    base = sequence_advantages(rewards, uids)
    scaled = sequence_advantages(rewards, uids, negative_scale=0.25)
    torch.testing.assert_close(scaled[:4], base[:4] * 0.25)
    torch.testing.assert_close(scaled[4:], base[4:])


def test_all_incorrect_mode_grades_wrong_answers_in_mixed_groups():
    # x = [1, 0.4, 0.1, 0]: mean 0.375, deviations [0.625, 0.025, -0.275, -0.375], var 0.6075 / 3 = 0.2025
    got = sequence_advantages([1.0, 0.4, 0.1, G0], ["a"] * 4, apply_to="all_incorrect")
    expected = torch.tensor([0.625, 0.025, -0.275, -0.375]) / (0.45 + EPS)
    torch.testing.assert_close(got, expected)
    # a wrong answer without a verdict has no graded value here: zero advantage, out of the statistics
    with_failure = sequence_advantages([1.0, 0.4, 0.1, G0, NOT_JUDGED], ["a"] * 5, apply_to="all_incorrect")
    torch.testing.assert_close(with_failure, torch.cat([expected, torch.zeros(1)]))
    # ... while the paper's mode reads it as what it is, a wrong outcome
    paper = sequence_advantages([1.0, 0.4, 0.1, G0, NOT_JUDGED], ["a"] * 5)
    torch.testing.assert_close(paper[1:], paper[1:2].expand(4))
    # all-negative groups are treated the same in both modes
    negative = [0.4, 0.1, 0.1, G0]
    torch.testing.assert_close(
        sequence_advantages(negative, ["b"] * 4, apply_to="all_incorrect"), sequence_advantages(negative, ["b"] * 4)
    )


def test_mean_only_mode_drops_the_std_in_both_branches():
    rewards = [1.0, 0.0, 0.2, 0.0] + [0.4, 0.1, 0.1, G0]
    got = sequence_advantages(rewards, ["m"] * 4 + ["n"] * 4, norm_adv_by_std_in_grpo=False, negative_scale=2.0)
    expected = torch.tensor([0.75, -0.25, -0.25, -0.25] + [1.0, -0.2, -0.2, -0.6])  # n: (v - 0.3) * 2
    torch.testing.assert_close(got, expected)


def test_padding_and_interleaved_groups():
    rewards = [0.4, 1.0, G0, 0.0, 0.1, 0.0]
    uids = ["n", "m", "n", "m", "n", "m"]
    lengths = [3, 1, 5, 2, 4, 6]
    token_rewards, mask, index = outcome_batch(rewards, uids, lengths, width=8)
    advantages, _ = compute_sgpo_outcome_advantage(token_rewards, mask, index, config=algorithm())
    assert torch.equal(advantages != 0, mask.bool() & (advantages != 0))
    assert torch.all(advantages[mask == 0] == 0)
    # each response's advantage is the same on all its valid tokens
    for row, length in enumerate(lengths):
        assert torch.all(advantages[row, :length] == advantages[row, 0])
    # group "m" = [1, 0, 0] -> binarised; group "n": v = [0.8, 0, 0.2] -> graded
    m = torch.tensor([2 / 3, -1 / 3, -1 / 3]) / (math.sqrt(1 / 3) + EPS)
    n = torch.tensor([0.8 - 1 / 3, -1 / 3, 0.2 - 1 / 3]) / (math.sqrt((0.8**2 + 0.2**2 - 3 * (1 / 3) ** 2) / 2) + EPS)
    torch.testing.assert_close(advantages[[1, 3, 5], 0], m)
    torch.testing.assert_close(advantages[[0, 2, 4], 0], n)


def test_encoded_rewards_round_trip_through_the_estimator():
    # the reward side's encoder and the estimator's decoder agree, including g = 1 (no error found)
    rewards = [encode_reward(False, g, 0.5) for g in (1.0, 0.5, 0.0)] + [encode_reward(False, None, 0.5)]
    got = sequence_advantages(rewards, ["a"] * 4)
    assert got[0] > got[1] > got[2], "judged values keep their order, g = 0 included"
    assert got[3] == 0, "a response that was not judged carries no signal"
    # v = [1, 0.5, 0] among the judged: mean 0.5, std 0.5
    torch.testing.assert_close(got[:3], torch.tensor([0.5, 0.0, -0.5]) / (0.5 + EPS), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"reward_band": 0.0}, "algorithm.sgpo.reward_band"),
        ({"reward_band": 1.0}, "algorithm.sgpo.reward_band"),
        ({"reward_band": 1.5}, "algorithm.sgpo.reward_band"),
        ({"min_spread": -0.1}, "algorithm.sgpo.min_spread"),
        ({"negative_scale": -1.0}, "algorithm.sgpo.negative_scale"),
        ({"apply_to": "everything"}, "algorithm.sgpo.apply_to"),
        ({"min_sprad": 0.1}, "algorithm.sgpo.min_sprad"),
    ],
)
def test_invalid_settings_name_the_key(settings, key):
    token_rewards, mask, index = outcome_batch([1.0, 0.0], ["a", "a"])
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        compute_sgpo_outcome_advantage(token_rewards, mask, index, config=algorithm(**settings))


@pytest.mark.parametrize(
    "foreign",
    [0.7, 0.5, float(np.nextafter(np.float32(1.0), np.float32(0.0))), float("nan"), -1e-7],
    ids=["inside [c, 1)", "exactly c", "just below 1 in float32", "nan", "just below 0"],
)
def test_rewards_at_and_beyond_the_band_edges_are_refused(foreign):
    token_rewards, mask, index = outcome_batch([foreign, 0.0], ["a", "a"])
    with pytest.raises(ValueError, match="not SGPO-encoded"):
        compute_sgpo_outcome_advantage(token_rewards, mask, index, config=algorithm())


def test_rewards_just_inside_the_band_edges_are_accepted():
    below_band = float(np.nextafter(np.float32(0.5), np.float32(0.0)))
    smallest_judged = encode_reward(False, 0.0, 0.5)
    token_rewards, mask, index = outcome_batch([below_band, smallest_judged, 1.0, 2.0], ["a", "a", "b", "b"])
    compute_sgpo_outcome_advantage(token_rewards, mask, index, config=algorithm())  # raises if refused
    correct, judged, graded = decode_rewards(token_rewards.sum(-1), 0.5)
    assert correct.tolist() == [False, False, True, True] and judged.tolist() == [True, True, False, False]
    assert graded[0] < 1 and 0 < graded[1] < 1e-5


def test_rewards_outside_the_encoding_are_refused():
    token_rewards, mask, index = outcome_batch([0.7, 0.0], ["a", "a"])  # 0.7 is in [c, 1) for c = 0.5
    with pytest.raises(ValueError, match="not SGPO-encoded"):
        compute_sgpo_outcome_advantage(token_rewards, mask, index, config=algorithm())
    token_rewards, mask, index = outcome_batch([-1.0, 1.0], ["a", "a"])  # math_dapo-style -1
    with pytest.raises(ValueError, match="not SGPO-encoded"):
        compute_sgpo_outcome_advantage(token_rewards, mask, index, config=algorithm())


def test_missing_sgpo_section_uses_documented_defaults():
    assert SGPOConfig.from_algorithm_config(OmegaConf.create({"adv_estimator": "sgpo"})) == SGPOConfig()


@pytest.mark.parametrize("norm", [True, False])
def test_binary_rewards_equal_verl_grpo_element_for_element(norm):
    token_rewards, mask, index = random_batch(64, 8, 32, graded=False, seed=3)
    ours, _ = compute_sgpo_outcome_advantage(
        token_rewards, mask, index, config=algorithm(norm_adv_by_std_in_grpo=norm)
    )
    verl_grpo, _ = compute_grpo_outcome_advantage(token_rewards, mask, index, norm_adv_by_std_in_grpo=norm)
    assert (verl_grpo != 0).any() and (verl_grpo == 0).any()  # the batch exercises both kinds of group
    torch.testing.assert_close(ours, verl_grpo, rtol=1e-6, atol=1e-6)


def _trainer_batch(token_rewards: torch.Tensor, mask: torch.Tensor, index: np.ndarray) -> DataProto:
    return DataProto.from_dict(
        tensors={"token_level_rewards": token_rewards, "response_mask": mask},
        non_tensors={"uid": index},
    )


def test_through_verl_compute_advantage_matches_grpo_on_binary_rewards(repo_root):
    from recipe.sgpo.preflight import compose_config

    config = compose_config()  # the shipped yaml, composed with verl's ppo_trainer
    token_rewards, mask, index = random_batch(32, 8, 16, graded=False, seed=5)
    ours = compute_advantage(_trainer_batch(token_rewards, mask, index), adv_estimator="sgpo", config=config.algorithm)
    grpo = compute_advantage(_trainer_batch(token_rewards, mask, index), adv_estimator="grpo", config=config.algorithm)
    torch.testing.assert_close(ours.batch["advantages"], grpo.batch["advantages"], rtol=1e-6, atol=1e-6)


def test_through_verl_compute_advantage_grades_all_negative_groups():
    from recipe.sgpo.preflight import compose_config

    config = compose_config()
    token_rewards, mask, index = random_batch(32, 8, 16, graded=True, seed=7)
    data = compute_advantage(_trainer_batch(token_rewards, mask, index), adv_estimator="sgpo", config=config.algorithm)
    direct, _ = get_adv_estimator_fn("sgpo")(token_rewards, mask, index, config=config.algorithm)
    torch.testing.assert_close(data.batch["advantages"], direct)
    torch.testing.assert_close(data.batch["returns"], direct)
    # all-negative groups with spread now carry signal, where grpo gives them nothing
    scores = token_rewards.sum(-1)
    all_negative = np.array([bool((scores[index == uid] < 1).all()) for uid in index])
    graded_signal = direct[torch.as_tensor(all_negative)].abs().sum()
    assert graded_signal > 0
    # the contrast the method is about: on the binary outcome, grpo gives those groups nothing
    binary_rewards = (token_rewards >= 1).float() * token_rewards
    grpo = compute_advantage(_trainer_batch(binary_rewards, mask, index), adv_estimator="grpo", config=None)
    assert grpo.batch["advantages"][torch.as_tensor(all_negative)].abs().sum() == 0


# --- Added for mutation testing (docs/mutation_testing.md): the group helpers' documented contract ------


def test_group_mean_std_defaults_to_every_sample_and_matches_torch():
    values = torch.tensor([1.0, 2.0, 4.0, 3.0, 5.0])
    group = group_ids(np.array(["a", "a", "a", "b", "b"], dtype=object), device=values.device)
    mean, std, count = group_mean_std(values, group)
    torch.testing.assert_close(mean, torch.tensor([7 / 3] * 3 + [4.0] * 2))
    torch.testing.assert_close(std, torch.tensor([values[:3].std().item()] * 3 + [values[3:].std().item()] * 2))
    assert count.tolist() == [3, 3, 3, 2, 2]


def test_group_mean_std_of_a_single_member_is_its_value_with_zero_std():
    values = torch.tensor([0.3, 0.9, 0.5])
    group = torch.tensor([0, 0, 1])
    members = torch.tensor([True, False, False])  # group 0 has one member, group 1 none
    mean, std, count = group_mean_std(values, group, members)
    torch.testing.assert_close(mean, torch.tensor([0.3, 0.3, 0.0]))
    assert std.tolist() == [0.0, 0.0, 0.0]
    assert count.tolist() == [1, 1, 0]


def test_group_mean_std_of_an_empty_batch_is_empty():
    mean, std, count = group_mean_std(torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert mean.numel() == std.numel() == count.numel() == 0


def test_an_all_negative_pair_uses_the_unbiased_std():
    # v = [0.4, 0.8]: mean 0.6, unbiased std sqrt(0.08 / 1) = 0.2828 -> A = ±0.2 / 0.2828 = ±0.7071
    got = sequence_advantages([0.2, 0.4], ["a", "a"])
    torch.testing.assert_close(got, torch.tensor([-0.2, 0.2]) / (math.sqrt(0.08) + EPS))


def test_float64_rewards_give_float64_advantages_equal_to_float32_ones():
    token_rewards, mask, index = outcome_batch([1.0, 0.0, 0.4, 0.1, 0.3, G0], ["a", "a", "b", "b", "b", "b"])
    in_float32, _ = compute_sgpo_outcome_advantage(token_rewards, mask, index, config=algorithm())
    in_float64, _ = compute_sgpo_outcome_advantage(token_rewards.double(), mask.double(), index, config=algorithm())
    assert in_float64.dtype == torch.float64
    torch.testing.assert_close(in_float64.float(), in_float32)


def test_group_ids_are_dense_flat_and_on_the_requested_device():
    # a column of uids (shape (bs, 1)) still gives one flat id per response
    ids = group_ids(np.array([["b"], ["a"], ["b"]], dtype=object), device=torch.device("cpu"))
    assert ids.shape == (3,) and ids.dtype == torch.long and ids.tolist() == [1, 0, 1]
    # the "meta" device is real torch (shapes without storage): the ids must follow the requested device
    assert group_ids(np.array([7, 3, 7]), device=torch.device("meta")).device.type == "meta"
