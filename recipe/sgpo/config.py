"""Settings of the `sgpo` advantage estimator (`algorithm.sgpo.*` in the hydra config).

Each field is documented where it is defined; `recipe/sgpo/config/sgpo_trainer.yaml` carries the
defaults that training uses (the yaml is the single source of truth for a run; the defaults here only
apply when a key is missing, e.g. when the estimator is called on a bare `algorithm` section).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reward.encoding import BAND_KEY, DEFAULT_REWARD_BAND, validate_band
from reward.settings_base import config_get, require_choice, require_number, build_settings

#: Where the estimator's settings live in the trainer config; used in every error message.
CONFIG_PREFIX = "algorithm.sgpo"

APPLY_TO_MODES = ("all_negative", "all_incorrect")


@dataclass(frozen=True)
class SGPOConfig:
    """Settings of the `sgpo` advantage estimator.

    Attributes:
        reward_band: The band ``c`` of the reward encoding (``reward/encoding.py``): a correct response
            is encoded as 1, a judged wrong response as ``c · g``. Must satisfy ``0 < c < 1``. It does not
            change advantages in all-negative groups (they are computed on ``g = r / c``); it sets how
            much a graded wrong answer counts against a correct one in ``apply_to=all_incorrect`` mode,
            and how far the logged mean reward sits above accuracy.
        min_spread: All-negative groups whose graded values have a standard deviation (unbiased, the same
            statistic GRPO divides by) below this get zero advantage, so float noise or near-identical
            verdicts never become a full-size signal after normalisation. Units: graded value. The
            default 1e-3 is well below the smallest real difference (one step of ``1 / max_steps`` at
            the flattest point of the logistic map moves ``g`` by about 0.01).
        negative_scale: The scale ``λ`` applied to the advantages of all-negative groups (1 = as large
            as those of mixed groups after normalisation). Must be ``≥ 0``.
        apply_to: ``all_negative`` (the paper's method): only all-negative groups use graded values,
            groups with a correct answer use binarised GRPO. ``all_incorrect`` (ablation): groups with a
            correct answer normalise the encoded reward itself (correct = 1, wrong = ``c · g``), so wrong
            answers there are graded too.
        epsilon: Added to the group standard deviation before dividing, as in verl's ``grpo``
            (same default), so that binary rewards give exactly verl's ``grpo`` advantages.
    """

    reward_band: float = DEFAULT_REWARD_BAND
    min_spread: float = 1e-3
    negative_scale: float = 1.0
    apply_to: str = "all_negative"
    epsilon: float = 1e-6

    def __post_init__(self) -> None:
        validate_band(self.reward_band, key=BAND_KEY)
        require_number(self.min_spread, f"{CONFIG_PREFIX}.min_spread", minimum=0.0)
        require_number(self.negative_scale, f"{CONFIG_PREFIX}.negative_scale", minimum=0.0)
        require_number(self.epsilon, f"{CONFIG_PREFIX}.epsilon", minimum=0.0)
        require_choice(self.apply_to, f"{CONFIG_PREFIX}.apply_to", APPLY_TO_MODES)

    @classmethod
    def from_algorithm_config(cls, algorithm_config: Any) -> "SGPOConfig":
        """Build from the trainer's ``algorithm`` section (DictConfig, dict, or verl's ``AlgoConfig``).

        A missing ``sgpo`` section gives the defaults; unknown keys in it are rejected (a typo must not
        silently fall back to a default).
        """
        return build_settings(cls, config_get(algorithm_config, "sgpo"), CONFIG_PREFIX)


def norm_adv_by_std(algorithm_config: Any) -> bool:
    """verl's ``algorithm.norm_adv_by_std_in_grpo`` (default True); False gives the Dr. GRPO mean-only form.

    verl does not pass this flag to registered estimators, so we read it from the section ourselves.
    """
    value = config_get(algorithm_config, "norm_adv_by_std_in_grpo")
    return True if value is None else bool(value)
