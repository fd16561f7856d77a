"""The shipped yaml and the settings dataclasses agree, so the yaml stays the one place to read settings."""

from __future__ import annotations

from recipe.sgpo.config import SGPOConfig
from recipe.sgpo.preflight import compose_config
from reward.grader import GraderConfig
from reward.judge import JudgeConfig
from reward.settings import RewardSettings


def test_yaml_values_equal_the_documented_dataclass_defaults():
    config = compose_config()
    assert SGPOConfig.from_algorithm_config(config.algorithm) == SGPOConfig()
    settings = RewardSettings.from_trainer_config(config)
    assert settings == RewardSettings(grader=GraderConfig(), judge=JudgeConfig())
    assert settings.reward_band == SGPOConfig().reward_band  # one band, read from algorithm.sgpo


def test_reward_band_is_read_from_the_estimators_key():
    settings = RewardSettings.from_trainer_config(compose_config(["algorithm.sgpo.reward_band=0.2"]))
    assert settings.reward_band == 0.2
