"""The recipe reaches verl the way a training run needs it to: by `import verl` alone, in Ray actors too."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

# What a fresh process (driver or Ray worker) runs: nothing of ours is imported explicitly.
PROBE = textwrap.dedent(
    """
    import sys
    assert "recipe.sgpo.advantage" not in sys.modules
    import verl
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
    print("registered" if "sgpo" in ADV_ESTIMATOR_REGISTRY else "missing")
    """
)


def run_python(code: str, env_overrides: dict[str, str], cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_overrides}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_entry_point_registers_on_import_verl(tmp_path):
    # tmp_path as cwd: the installed entry point, not the checkout on sys.path, must do the work
    result = run_python(PROBE, {"VERL_USE_EXTERNAL_MODULES": ""}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "registered"


def test_recipe_is_a_namespace_shared_with_other_recipes(tmp_path, repo_root):
    # TransferQueue installs a `recipe/` folder (recipe.simple_use_case) into site-packages, and
    # verl-recipe is used as a `recipe/` tree on PYTHONPATH (recipe.dapo, ...): ours must import beside
    # both in one process, in both orders, and from both the installed package and the checkout.
    other = tmp_path / "verl_recipe_checkout"
    (other / "recipe" / "dapo").mkdir(parents=True)
    (other / "recipe" / "dapo" / "__init__.py").write_text("NAME = 'dapo'\n")
    code = textwrap.dedent(
        """
        import importlib, sys
        names = sys.argv[1:]
        mods = [importlib.import_module(n) for n in names]
        import recipe.sgpo.advantage, recipe.cpu_backend
        print(mods[names.index("recipe.dapo")].NAME, recipe.sgpo.advantage.ESTIMATOR_NAME)
        """
    )
    assert not (repo_root / "recipe" / "__init__.py").exists(), "a regular `recipe` package shadows the others"
    for cwd in (tmp_path, repo_root):
        for order in (["recipe.dapo", "recipe.simple_use_case"], ["recipe.simple_use_case", "recipe.dapo"]):
            env = {**os.environ, "PYTHONPATH": f"{other}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
            result = subprocess.run([sys.executable, "-c", code, *order], capture_output=True, text=True,
                                    env=env, cwd=cwd, timeout=300)
            assert result.returncode == 0, result.stderr[-2000:]
            assert result.stdout.split()[-2:] == ["dapo", "sgpo"]


def test_external_modules_fallback_without_entry_points(repo_root):
    disabled = {"VERL_USE_EXTERNAL_PLUGINS": "none", "VERL_USE_EXTERNAL_MODULES": ""}
    assert run_python(PROBE, disabled, cwd=repo_root).stdout.strip() == "missing"
    fallback = {"VERL_USE_EXTERNAL_PLUGINS": "none", "VERL_USE_EXTERNAL_MODULES": "recipe.sgpo.plugin"}
    result = run_python(PROBE, fallback, cwd=repo_root)
    assert result.stdout.strip() == "registered", result.stderr


def test_check_install_reports_a_missing_registration(repo_root):
    env = {**os.environ, "VERL_USE_EXTERNAL_PLUGINS": "none", "VERL_USE_EXTERNAL_MODULES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "recipe.sgpo.preflight", "--check-install"],
        capture_output=True, text=True, env=env, cwd=repo_root, timeout=300,
    )
    assert result.returncode == 1
    assert "VERL_USE_EXTERNAL_PLUGINS='none' excludes the `sgpo` entry point" in result.stdout
    assert "VERL_USE_EXTERNAL_MODULES=recipe.sgpo.plugin" in result.stdout  # the fix is named


# What Ray runs in the CPU rollout server's process: it imports the module of the actor class first, and that
# module's own `verl` import loads the plugin while the module is still half-initialised.
ROLLOUT_SERVER_PROBE = textwrap.dedent(
    """
    import recipe.cpu_backend.rollout
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
    from verl.workers.engine import EngineRegistry
    from verl.workers.rollout import base
    from verl.workers.rollout.replica import RolloutReplicaRegistry
    print("sgpo" in ADV_ESTIMATOR_REGISTRY, "cpu" in EngineRegistry._engines["language_model"]["fsdp2"],
          ("transformers", "async") in base._ROLLOUT_REGISTRY, RolloutReplicaRegistry.get("transformers").__name__)
    """
)


def test_the_plugin_registers_in_a_process_that_imports_the_cpu_rollout_before_verl(tmp_path):
    # Was: "SGPO plugin failed to register with verl: ImportError: cannot import name 'register_rollout' from
    # partially initialized module 'recipe.cpu_backend.rollout'" in every CPU run's rollout server.
    result = run_python(ROLLOUT_SERVER_PROBE, {"VERL_PLATFORM": "cpu", "VERL_USE_EXTERNAL_MODULES": ""}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SGPO plugin failed" not in result.stderr, result.stderr[-3000:]
    assert result.stdout.split() == ["True", "True", "True", "TransformersReplica"]


def test_broken_plugin_is_reported_loudly(tmp_path):
    # A real fault: a `reward` package that fails to import shadows ours on PYTHONPATH, so the entry
    # point's import raises inside `import verl`, which verl swallows at debug level.
    shadow = tmp_path / "reward"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('simulated broken install')\n")
    env = {"PYTHONPATH": str(tmp_path), "VERL_USE_EXTERNAL_MODULES": ""}
    result = run_python("import verl", env, cwd=tmp_path)
    assert result.returncode == 0  # verl itself carries on ...
    assert "[sgpo] ERROR: SGPO plugin failed to register with verl" in result.stderr  # ... but we are loud
    assert "simulated broken install" in result.stderr
    check = subprocess.run(
        [sys.executable, "-m", "recipe.sgpo.preflight", "--check-install"],
        capture_output=True, text=True, env={**os.environ, **env}, cwd=tmp_path, timeout=300,
    )
    assert check.returncode == 1
    assert "loading the entry point failed" in check.stdout and "simulated broken install" in check.stdout


@pytest.mark.slow
def test_estimator_resolves_inside_a_ray_actor():
    """verl computes advantages inside a Ray actor; the plugin must reach it through `import verl`."""
    import numpy as np
    import ray
    import torch
    from sgpo_batches import random_batch

    from recipe.sgpo.advantage import compute_sgpo_outcome_advantage

    @ray.remote(num_cpus=1)
    class AdvantageWorker:
        def compute(self, token_rewards, mask, index, algorithm):
            import sys

            preloaded = "recipe.sgpo.advantage" in sys.modules
            import verl  # noqa: F401  the only import a verl worker is guaranteed to do
            from verl.trainer.ppo.core_algos import get_adv_estimator_fn

            advantages, _ = get_adv_estimator_fn("sgpo")(token_rewards, mask, index, config=algorithm)
            return preloaded, os.getpid(), advantages

    token_rewards, mask, index = random_batch(16, 4, 8, graded=True, seed=11)
    algorithm = {"adv_estimator": "sgpo", "norm_adv_by_std_in_grpo": True, "sgpo": {"reward_band": 0.5}}
    ray.init(
        num_cpus=1,
        include_dashboard=False,
        runtime_env={"env_vars": {"VERL_USE_EXTERNAL_MODULES": ""}},
        log_to_driver=False,
    )
    try:
        worker = AdvantageWorker.remote()
        preloaded, pid, remote = ray.get(worker.compute.remote(token_rewards, mask, np.asarray(index), algorithm))
    finally:
        ray.shutdown()
    assert pid != os.getpid()
    assert not preloaded
    local, _ = compute_sgpo_outcome_advantage(token_rewards, mask, index, config=algorithm)
    assert torch.equal(remote, local)
    assert (remote != 0).any()
