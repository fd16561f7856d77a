"""Fail-fast check of an SGPO training config, before Ray or any GPU work starts.

verl 0.9.1 reports an unknown advantage estimator only after the first full rollout, ignores legacy
top-level reward keys silently, and swallows plugin import errors. This module composes the same hydra
config the trainer will see and checks, in seconds:

1. the SGPO plugin registered itself through ``import verl`` alone (as it must in Ray actors);
2. no legacy top-level ``reward_model.*`` / ``custom_reward_function.*`` key is set (verl ignores them);
3. ``algorithm.adv_estimator`` resolves in verl's estimator registry;
4. ``algorithm.sgpo.*`` is valid, and SGPO's preconditions hold (no KL in the reward, groups of ≥ 2);
5. the reward manager resolves (``reward.reward_manager.*``) to a verl ``RewardManagerBase``, and the
   V1 trainer (``trainer.v1.trainer_mode``) resolves;
6. verl's own ``validate_config`` passes (batch-size divisibility and the like);
7. the judge placement is one where the reward manager sees every row field (see
   :func:`check_reward_placement`);
8. with dynamic batches, every token budget holds the longest possible sequence (verl fails on the first
   batch that has one, possibly hours in);
9. the policy model's context holds the longest prompt plus response (vLLM would cut responses): read
   from a local folder's config.json, the Hugging Face cache, or :data:`HUB_CONTEXT_POSITIONS`;
10. offloaded actor state buys vLLM room: with ``param_offload`` or ``optimizer_offload``,
    ``rollout.gpu_memory_utilization`` is at least :data:`OFFLOADED_MIN_GPU_MEMORY_UTILIZATION`;
11. on a CUDA machine, every module the chosen configuration imports on the GPU path is importable
    (flash-attn for FlashAttention-2, remove-padding and Ulysses; vLLM; Liger kernels) -- verl would
    otherwise fail in its Ray workers after the cluster is up.

Usage::

    python -m recipe.sgpo.preflight [options] [hydra overrides ...]
    python -m recipe.sgpo.preflight --check-install      # only check 1, with the full traceback
    python -m recipe.sgpo.preflight --print-config-dir   # for `main_ppo --config-path`

Exit status 0 when every check passes, 1 otherwise (all failures are listed, not just the first).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

#: The directory holding ``sgpo_trainer.yaml`` (the hydra config path of every SGPO run).
CONFIG_DIR = Path(__file__).resolve().parent / "config"
CONFIG_NAME = "sgpo_trainer"

#: The entry point that registers SGPO with verl (pyproject.toml) and its module.
PLUGIN_ENTRY_POINT = "sgpo"
PLUGIN_MODULE = "recipe.sgpo.plugin"

#: Top-level sections that verl 0.9.1's ``main_ppo`` ignores, and where their settings live now.
LEGACY_SECTIONS = {
    "reward_model": "reward.reward_model / reward.reward_manager / reward.num_workers",
    "custom_reward_function": "reward.custom_reward_function",
}

#: Estimators that normalise inside groups of responses to one prompt and so need ``rollout.n ≥ 2``.
GROUP_ESTIMATORS = ("sgpo", "grpo", "grpo_vectorized", "rloo", "rloo_vectorized", "grpo_passk", "gdpo")
MIN_GROUP_SIZE = 2

#: ``reward.sgpo.judge_scope`` that turns the judge off, and the judge backend that asks verl's reward model.
JUDGE_OFF = "off"
ROUTER_BACKEND = "router"
#: ``reward.custom_reward_function.path`` that routes verl's reward loop to the reward manager when a
#: reward model is enabled (our grader's verl entry point; the manager does all the scoring).
GRADER_REWARD_FUNCTION = "pkg://reward.grader"
#: Actor strategies whose dynamic-batch budgets are per GPU and multiplied by the Ulysses SP size.
FSDP_STRATEGIES = ("fsdp", "fsdp2")

#: ``max_position_embeddings`` of the hub ids the launch scripts name (their public config.json), for
#: when neither a local folder nor the Hugging Face cache has the config.
HUB_CONTEXT_POSITIONS = {
    "Qwen/Qwen2.5-Math-7B": 4096,
    "Qwen/Qwen2.5-7B": 131072,
    "Qwen/Qwen2.5-14B": 131072,
    "Qwen/Qwen2.5-32B": 131072,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": 131072,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B": 131072,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": 131072,
}

#: Least ``rollout.gpu_memory_utilization`` worth offloading for: offloaded weights or Adam state free
#: 4-16 GB of an 80 GB GPU, which only help when vLLM may use them (verl's examples use 0.6 with nothing
#: offloaded; verl-recipe dapo uses 0.8 with offloading).
OFFLOADED_MIN_GPU_MEMORY_UTILIZATION = 0.7

#: verl's default ``attn_implementation`` of FSDP models (when ``model.override_config`` sets none).
VERL_DEFAULT_ATTENTION = "flash_attention_2"


@dataclass
class PreflightReport:
    """Outcome of the checks: what passed (for the summary) and what failed (with the fix)."""

    passed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def render(self) -> str:
        lines = [f"  ok    {item}" for item in self.passed]
        lines += [f"  FAIL  {item}" for item in self.failures]
        verdict = "preflight passed" if self.ok else f"preflight FAILED ({len(self.failures)} problem(s))"
        return "\n".join([f"[sgpo] {verdict}", *lines])


def compose_config(overrides: Sequence[str] = (), config_dir: Path = CONFIG_DIR, config_name: str = CONFIG_NAME):
    """Compose the hydra config exactly as ``main_ppo --config-path/--config-name`` would."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None):
        return compose(config_name=config_name, overrides=list(overrides))


def check_plugin_installed() -> str | None:
    """Return None if ``import verl`` registered the sgpo estimator, else an explanation with the fix.

    Must run before anything in this process imports ``recipe.sgpo.advantage`` directly, or it would
    prove nothing about Ray actors (which only run ``import verl``).
    """
    import verl  # noqa: F401  loads entry points and VERL_USE_EXTERNAL_MODULES
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY

    if "sgpo" in ADV_ESTIMATOR_REGISTRY:
        return None
    external = os.environ.get("VERL_USE_EXTERNAL_MODULES", "")
    entry_points = [ep for ep in importlib.metadata.entry_points(group="verl.plugins") if ep.name == PLUGIN_ENTRY_POINT]
    policy = os.environ.get("VERL_USE_EXTERNAL_PLUGINS", "auto")
    if not entry_points:
        reason = (
            "the `verl.plugins` entry point `sgpo` is not installed in this environment "
            f"(VERL_USE_EXTERNAL_MODULES={external!r})"
        )
    elif policy.strip().lower() == "none" or (
        policy.strip().lower() != "auto" and PLUGIN_ENTRY_POINT not in {p.strip() for p in policy.split(",")}
    ):
        reason = f"VERL_USE_EXTERNAL_PLUGINS={policy!r} excludes the `sgpo` entry point"
    else:
        try:
            entry_points[0].load()
            reason = "the entry point loaded now but not during `import verl` (import order problem)"
        except Exception:  # noqa: BLE001 - we are reporting it
            reason = "loading the entry point failed:\n" + traceback.format_exc()
    return (
        f"the sgpo estimator is not registered by `import verl`: {reason}\n"
        "        fix: `pip install -e .` in the repository root, or export "
        f"VERL_USE_EXTERNAL_MODULES={PLUGIN_MODULE} with the repository on PYTHONPATH "
        "(multi-node: pass both through +ray_kwargs.ray_init.runtime_env.env_vars)"
    )


def find_legacy_keys(config: Any) -> list[str]:
    """Dotted names of legacy top-level reward keys that are set (non-null) in ``config``."""
    from omegaconf import OmegaConf

    found = []
    for section in LEGACY_SECTIONS:
        if section not in config or config[section] is None:
            continue
        container = OmegaConf.to_container(config[section], resolve=False)
        found += [f"{section}.{key}" for key in _non_null_leaves(container)]
    return found


def run_checks(config: Any, check_offline: bool = True) -> PreflightReport:
    """Run every check on a composed config and collect the results (never raises for a bad config)."""
    report = PreflightReport()
    _check(report, "SGPO plugin registered by `import verl`", lambda: _raise_if(check_plugin_installed()))
    legacy = find_legacy_keys(config)
    if legacy:
        report.failures.append(
            "legacy keys that verl 0.9.1 silently ignores: "
            + ", ".join(legacy)
            + "; move them under "
            + "; ".join(f"{old}.* -> {new}" for old, new in LEGACY_SECTIONS.items())
        )
    else:
        report.passed.append("no legacy top-level reward keys")
    estimator = str(config.algorithm.adv_estimator)
    _check(report, f"algorithm.adv_estimator={estimator} resolves", lambda: _resolve_estimator(estimator))
    if estimator == "sgpo":
        _check(report, "algorithm.sgpo settings valid", lambda: _validate_sgpo(config))
    if estimator in GROUP_ESTIMATORS:
        _check(report, "groups of responses (rollout.n)", lambda: _validate_group_size(config))
    _check(report, "reward manager resolves", lambda: _resolve_reward_manager(config))
    if _uses_sgpo_reward_manager(config):
        _check(report, "reward.sgpo settings valid", lambda: _validate_reward_settings(config))
    _check(report, "trainer.v1.trainer_mode resolves", lambda: _resolve_trainer(config))
    _check(report, "verl's validate_config", lambda: _verl_validate(config))
    _check(report, "judge placement (reward.reward_model.*)", lambda: check_reward_placement(config))
    _check(report, "token budgets hold the longest sequence", lambda: check_token_budgets(config))
    _check(report, "policy context holds prompt + response", lambda: check_context_length(config))
    _check(report, "offloading leaves vLLM the freed memory", lambda: check_offload_feeds_rollout(config))
    if check_offline and (config.get("sgpo_offline") or {}).get("set_dir"):
        _check(report, "offline set matches the run (sgpo_offline.set_dir)", lambda: check_offline_set(config))
    _check_gpu_modules(report, config)
    return report


def check_offline_set(config: Any) -> None:
    """Raise when the offline set cannot be trained on with this config (recipe/sgpo/offline/store.py)."""
    from transformers import AutoTokenizer

    from recipe.sgpo.offline.store import training_problems

    tokenizer = AutoTokenizer.from_pretrained(str(config.actor_rollout_ref.model.path))
    train_files = config.data.train_files
    problems = training_problems(
        Path(str(config.sgpo_offline.set_dir)),
        group_size=int(config.actor_rollout_ref.rollout.n),
        tokenizer=tokenizer,
        prompt_length=int(config.data.max_prompt_length),
        response_length=int(config.data.max_response_length),
        train_files=[train_files] if isinstance(train_files, str) else list(train_files),
    )
    if problems:
        raise ValueError("\n".join(problems))


def _check_gpu_modules(report: PreflightReport, config: Any, cuda_available: bool | None = None) -> None:
    modules = gpu_path_modules(config)
    if cuda_available is None:
        cuda_available = _cuda_available()
    if not cuda_available:
        report.passed.append(f"GPU modules {', '.join(modules) or '(none)'}: not checked (no CUDA device here)")
        return
    _check(report, f"GPU modules importable ({', '.join(modules)})", lambda: check_modules_importable(modules))


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recipe.sgpo.preflight",
        description="Compose an SGPO training config and check it before any Ray or GPU work.",
    )
    parser.add_argument("overrides", nargs="*", help="hydra overrides, exactly as passed to the trainer")
    parser.add_argument("--config-dir", type=Path, default=CONFIG_DIR, help="hydra config directory")
    parser.add_argument("--config-name", default=CONFIG_NAME, help="hydra config name")
    parser.add_argument("--check-install", action="store_true", help="only check that the plugin is installed")
    parser.add_argument("--print-config-dir", action="store_true", help="print the SGPO config dir and exit")
    parser.add_argument("--print-config", action="store_true", help="also print the composed config")
    parser.add_argument("--no-offline-set-check", action="store_true",
                        help="do not check sgpo_offline.set_dir (a dry run before the set is generated)")
    args = parser.parse_args(argv)

    if args.print_config_dir:
        print(CONFIG_DIR)
        return 0
    if args.check_install:
        problem = check_plugin_installed()
        print("[sgpo] plugin OK: `import verl` registers the sgpo estimator" if problem is None else f"[sgpo] {problem}")
        return 0 if problem is None else 1
    try:
        config = compose_config(args.overrides, args.config_dir, args.config_name)
    except Exception as error:  # noqa: BLE001 - hydra's message names the bad override
        print(f"[sgpo] preflight FAILED: the config does not compose: {error}", file=sys.stderr)
        return 1
    if args.print_config:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(config))
    report = run_checks(config, check_offline=not args.no_offline_set_check)
    print(report.render(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


def _check(report: PreflightReport, name: str, check) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # verl warns about disabled critics etc.; not our verdict
            check()
    except Exception as error:  # noqa: BLE001 - every failure becomes a line in the report
        report.failures.append(f"{name}: {_describe(error)}")
    else:
        report.passed.append(name)


def _describe(error: BaseException) -> str:
    # hydra wraps verl's dataclass assertions; the innermost message is the useful one
    while error.__cause__ is not None and not str(error).strip():
        error = error.__cause__
    text = str(error).strip() or type(error).__name__
    return text.replace("\n", "\n        ")


def _raise_if(problem: str | None) -> None:
    if problem is not None:
        raise RuntimeError(problem)


def _resolve_estimator(name: str) -> None:
    from verl.trainer.ppo.core_algos import AdvantageEstimator, get_adv_estimator_fn

    if name in (AdvantageEstimator.GAE.value, AdvantageEstimator.GRPO.value):
        return  # handled inline by verl's compute_advantage
    get_adv_estimator_fn(name)


def _validate_sgpo(config: Any) -> None:
    from recipe.sgpo.config import SGPOConfig

    SGPOConfig.from_algorithm_config(config.algorithm)
    if config.algorithm.get("use_kl_in_reward", False):
        raise ValueError(
            "algorithm.use_kl_in_reward=true mixes a KL term into the reward and breaks the SGPO reward "
            "encoding; use actor_rollout_ref.actor.use_kl_loss=true instead"
        )


def _validate_group_size(config: Any) -> None:
    n = int(config.actor_rollout_ref.rollout.n)
    if n < MIN_GROUP_SIZE:
        raise ValueError(
            f"actor_rollout_ref.rollout.n={n}: {config.algorithm.adv_estimator} normalises inside groups of "
            f"responses to one prompt and needs n >= {MIN_GROUP_SIZE}"
        )


def _resolve_reward_manager(config: Any) -> None:
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    cls = resolve_reward_manager_cls(config)
    if not (isinstance(cls, type) and issubclass(cls, RewardManagerBase)):
        raise TypeError(f"{cls!r} is not a subclass of verl's RewardManagerBase")


def _uses_sgpo_reward_manager(config: Any) -> bool:
    try:
        from verl.trainer.ppo.reward import resolve_reward_manager_cls

        from reward.manager import SGPORewardManager

        return issubclass(resolve_reward_manager_cls(config), SGPORewardManager)
    except Exception:  # noqa: BLE001 - an unresolvable manager is reported by its own check
        return False


def _validate_reward_settings(config: Any) -> None:
    from omegaconf import OmegaConf

    from reward.settings import RewardSettings

    settings = RewardSettings.from_trainer_config(config)
    apply_to = OmegaConf.select(config, "algorithm.sgpo.apply_to")
    if str(config.algorithm.adv_estimator) == "sgpo" and apply_to == "all_incorrect" and settings.judge_scope != "all_wrong":
        # The estimator gives a wrong response without a verdict zero advantage wherever graded values
        # are the signal; with only all-negative groups judged, every wrong answer of a mixed group
        # would be such a response and mixed groups would teach nothing.
        raise ValueError(
            "algorithm.sgpo.apply_to=all_incorrect grades the wrong answers of mixed groups, but "
            f"reward.sgpo.judge_scope={settings.judge_scope} never sends them to the judge; "
            "set reward.sgpo.judge_scope=all_wrong"
        )


def _resolve_trainer(config: Any) -> None:
    from verl.trainer.ppo.v1 import get_trainer_cls

    get_trainer_cls(str(config.trainer.v1.trainer_mode))


def _verl_validate(config: Any) -> None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    validate_config(
        config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
    )


def check_reward_placement(config: Any) -> None:
    """Raise unless the reward model (the judge inside verl), if enabled, is placed where our manager works.

    What verl 0.9.1 does (read in its code):

    * ``RewardLoopWorker.compute_score`` (experimental/reward_loop/reward_loop.py): with
      ``reward.reward_model.enable`` and no ``reward.custom_reward_function.path`` it scores with the reward
      model as a *discriminative* one (``/classify``) and never calls the reward manager.
    * Colocated (``enable_resource_pool=False``) under the V1 trainer: the batch is scored after the
      rollout by ``_compute_reward_colocate`` (trainer/ppo/v1/trainer_base.py), which hands the reward
      workers only prompts, responses and raw_prompt -- no ground truth, no extra_info (the reference
      solution), no uid -- so a judge that compares with the reference cannot work there.
    * Standalone (``enable_resource_pool=True``) scores each trajectory through the agent loop with all of
      the row's fields, on a pool of ``reward.reward_model.nnodes`` x ``n_gpus_per_node`` GPUs (verl checks
      they are positive only when it builds the pools). ``RewardModelManager`` puts the judge's vLLM to
      sleep after start-up when ``rollout.free_cache_engine`` is on, and only the colocated path
      (``compute_rm_score``) wakes it: on its own pool it would never answer.
    * The judge backend ``router`` reaches that reward model through verl's router; without one it has no
      address, and with one but another backend the judge model verl starts is never asked.
    """
    from omegaconf import OmegaConf

    reward = config.reward
    model = reward.reward_model
    function_path = reward.custom_reward_function.get("path")
    if function_path:
        from verl.trainer.ppo.reward import get_custom_reward_fn

        get_custom_reward_fn(config)  # raises naming the module or function that does not load
    judge_backend = OmegaConf.select(config, "reward.sgpo.judge.backend")
    judge_on = OmegaConf.select(config, "reward.sgpo.judge_scope") != JUDGE_OFF
    problems = []
    if model.enable:
        if not function_path:
            problems.append(
                "reward.reward_model.enable=True without reward.custom_reward_function.path: verl's reward loop "
                "then scores with the reward model as a discriminative one and never calls the reward manager; "
                f"set reward.custom_reward_function.path={GRADER_REWARD_FUNCTION}"
            )
        if not model.enable_resource_pool and config.trainer.use_v1:
            problems.append(
                "a colocated reward model (reward.reward_model.enable_resource_pool=False) under the V1 trainer "
                "gets only prompts and responses (no reference answer, reference solution or uid), so the "
                "step-wise judge cannot work there; set reward.reward_model.enable_resource_pool=True with "
                "reward.reward_model.nnodes / n_gpus_per_node (the judge on its own GPUs), or use an external "
                "judge server (reward.sgpo.judge.backend=openai)"
            )
        if model.enable_resource_pool and (int(model.nnodes) <= 0 or int(model.n_gpus_per_node) <= 0):
            problems.append(
                f"reward.reward_model.nnodes={model.nnodes}, n_gpus_per_node={model.n_gpus_per_node}: the judge's "
                "own pool (enable_resource_pool=True) needs at least one node and one GPU"
            )
        if model.enable_resource_pool and model.rollout.free_cache_engine:
            problems.append(
                "reward.reward_model.rollout.free_cache_engine=True with enable_resource_pool=True: verl puts the "
                "judge to sleep after start-up and, on its own pool, never wakes it; set "
                "reward.reward_model.rollout.free_cache_engine=False"
            )
        if judge_on and judge_backend is not None and judge_backend != ROUTER_BACKEND:
            problems.append(
                f"reward.reward_model.enable=True starts a judge model, but reward.sgpo.judge.backend={judge_backend} "
                f"never asks it; set reward.sgpo.judge.backend={ROUTER_BACKEND}"
            )
    elif judge_on and judge_backend == ROUTER_BACKEND:
        problems.append(
            f"reward.sgpo.judge.backend={ROUTER_BACKEND} asks the judge model verl starts with "
            "reward.reward_model.enable=True (model_path, enable_resource_pool=True), which is not enabled"
        )
    if problems:
        raise ValueError("\n".join(problems))


def check_token_budgets(config: Any) -> None:
    """Raise unless every dynamic-batch token budget holds the longest possible sequence.

    verl packs micro-batches up to ``budget × ulysses_sequence_parallel_size`` tokens and asserts
    (``rearrange_micro_batches``) that the batch's longest sequence fits -- on the first batch that has a
    sequence that long, which can be hours into a run. Longest = ``data.max_prompt_length +
    data.max_response_length`` tokens. FSDP strategies only (the ones whose budget is per GPU and SP group).
    """
    from verl.trainer.ppo.utils import need_reference_policy

    section = config.actor_rollout_ref
    if str(section.actor.strategy) not in FSDP_STRATEGIES:
        return
    longest = int(config.data.max_prompt_length) + int(config.data.max_response_length)
    budgets = []
    if section.actor.use_dynamic_bsz:
        budgets.append(("actor.ppo_max_token_len_per_gpu", section.actor.ppo_max_token_len_per_gpu, _sp_size(section.actor)))
    if section.rollout.log_prob_use_dynamic_bsz:
        budgets.append(("rollout.log_prob_max_token_len_per_gpu", section.rollout.log_prob_max_token_len_per_gpu,
                        _sp_size(section.actor)))
    if need_reference_policy(config) and section.ref.log_prob_use_dynamic_bsz:
        budgets.append(("ref.log_prob_max_token_len_per_gpu", section.ref.log_prob_max_token_len_per_gpu,
                        _sp_size(section.ref)))
    problems = [
        f"actor_rollout_ref.{key}={budget} x ulysses_sequence_parallel_size {sp} = {int(budget) * sp} tokens "
        f"< data.max_prompt_length + data.max_response_length = {longest}: the first batch with a sequence that "
        f"long fails; raise it to at least {-(-longest // sp)}"
        for key, budget, sp in budgets
        if int(budget) * sp < longest
    ]
    if problems:
        raise ValueError("\n".join(problems))


def gpu_path_modules(config: Any) -> list[str]:
    """Top-level modules the configuration imports on a GPU machine (that the CPU config never does).

    * ``flash_attn``: attention ``flash_attention_2`` (verl's default; ``model.override_config.
      attn_implementation``), ``model.use_remove_padding`` (its varlen kernels), or Ulysses SP > 1;
    * ``vllm``: ``rollout.name=vllm``; ``liger_kernel``: ``model.use_liger``.
    """
    section = config.actor_rollout_ref
    model = section.model
    attention = (model.get("override_config") or {}).get("attn_implementation") or VERL_DEFAULT_ATTENTION
    modules = []
    if attention == VERL_DEFAULT_ATTENTION or model.get("use_remove_padding") or _sp_size(section.actor) > 1:
        modules.append("flash_attn")
    if _rollout_name(config) == "vllm":
        modules.append("vllm")
    if model.get("use_liger"):
        modules.append("liger_kernel")
    return modules


def _rollout_name(config: Any) -> str | None:
    from omegaconf import OmegaConf

    return OmegaConf.select(config, "actor_rollout_ref.rollout.name", default=None, throw_on_missing=False)


def check_modules_importable(modules: Sequence[str]) -> None:
    """Raise naming each module that does not import, with its error and the install fix."""
    import importlib

    problems = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - an ImportError or a broken CUDA build, reported alike
            problems.append(f"`import {name}` fails ({type(error).__name__}: {error})")
    if problems:
        raise ImportError(
            "; ".join(problems) + ". The GPU path needs them: `pip install -r requirements.txt --find-links "
            "<prebuilt flash-attn wheel source>` (docs/gpu_runs.md \"Install\")"
        )


def check_offload_feeds_rollout(config: Any) -> None:
    """Raise when the actor offloads state to CPU memory but vLLM may not use the GPU memory it frees.

    Offloading costs a host-device copy of that state every step; its only gain is room for vLLM's KV
    cache, which vLLM takes only up to ``rollout.gpu_memory_utilization`` of each GPU.
    """
    section = config.actor_rollout_ref
    if _rollout_name(config) != "vllm" or str(section.actor.strategy) not in FSDP_STRATEGIES:
        return
    fsdp = section.actor.fsdp_config
    offloaded = [key for key in ("param_offload", "optimizer_offload") if fsdp.get(key)]
    share = float(section.rollout.gpu_memory_utilization)
    if offloaded and share < OFFLOADED_MIN_GPU_MEMORY_UTILIZATION:
        raise ValueError(
            f"actor_rollout_ref.actor.fsdp_config.{' and '.join(offloaded)}=True, but "
            f"actor_rollout_ref.rollout.gpu_memory_utilization={share} leaves the freed memory unused; raise it to "
            f">= {OFFLOADED_MIN_GPU_MEMORY_UTILIZATION} (run_scripts/estimate_memory.py gives the peak), or "
            "turn the offload off"
        )


def model_context_positions(model: Any) -> tuple[int | None, str]:
    """The policy model's ``max_position_embeddings`` and where it was read (None when nowhere).

    Sources in order: ``model.override_config``, a local folder's config.json, the Hugging Face cache's
    config.json of a hub id (no download), :data:`HUB_CONTEXT_POSITIONS`.
    """
    name = str(model.get("hf_config_path") or model.path)
    overrides = model.get("override_config") or {}
    if overrides.get("max_position_embeddings"):
        return int(overrides["max_position_embeddings"]), "model.override_config"
    config_file = Path(os.path.expanduser(name)) / "config.json"
    if not config_file.is_file():
        config_file = _cached_hub_config(name)
    if config_file is not None and config_file.is_file():
        hf_config = json.loads(config_file.read_text())
        positions = hf_config.get("max_position_embeddings") or (hf_config.get("text_config") or {}).get(
            "max_position_embeddings")
        return (int(positions) if positions else None), str(config_file)
    if name in HUB_CONTEXT_POSITIONS:
        return HUB_CONTEXT_POSITIONS[name], f"{name} (preflight's HUB_CONTEXT_POSITIONS)"
    return None, name


def _cached_hub_config(name: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - ships with transformers
        return None
    try:
        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id: a local path that does not exist
        return None
    return Path(found) if isinstance(found, str) else None


def check_context_length(config: Any) -> None:
    """Raise when the policy model's context cannot hold the longest prompt plus response.

    verl 0.9.1's vLLM server caps every response at ``max_model_len - prompt length`` without a warning,
    and ``max_model_len`` defaults to the model's ``max_position_embeddings`` (4,096 for Qwen2.5-Math-7B).
    Local folders, hub ids in the Hugging Face cache and the hub ids of the launch scripts are checked
    (:func:`model_context_positions`); another uncached hub id is not fetched here.
    """
    positions, folder = model_context_positions(config.actor_rollout_ref.model)
    if positions is None:
        return
    limit = int(config.actor_rollout_ref.rollout.get("max_model_len") or positions)
    longest = int(config.data.max_prompt_length) + int(config.data.max_response_length)
    if longest > limit:
        raise ValueError(
            f"data.max_prompt_length + data.max_response_length = {longest} tokens, but {folder} holds at most "
            f"{limit} (max_position_embeddings in config.json, or rollout.max_model_len): vLLM would cut longer "
            "responses at the context end without a warning; shorten the lengths, or extend the context with "
            "+actor_rollout_ref.model.override_config.max_position_embeddings=<tokens> (with a rope setting "
            "that supports it)"
        )


def _sp_size(section: Any) -> int:
    # verl copies the deprecated top-level key into fsdp_config when it is > 1 (FSDPActorConfig.__post_init__)
    deprecated = int(section.get("ulysses_sequence_parallel_size") or 1)
    return deprecated if deprecated > 1 else int(section.fsdp_config.get("ulysses_sequence_parallel_size") or 1)


def _non_null_leaves(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        leaves = []
        for key, value in node.items():
            leaves += _non_null_leaves(value, f"{prefix}.{key}" if prefix else str(key))
        return leaves
    return [] if node is None else [prefix]


if __name__ == "__main__":
    sys.exit(main())
