"""Shared test helpers. Tests run on CPU against the real verl 0.9.1 wheel (README "Tests")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Keep verl/Ray quiet and off the network in every test process and in the actors they start.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


#: Test files that share an expensive session fixture; under pytest-xdist they form one unit of work, so the
#: fixture is built once (tiny_main_job: a trainer launch).
SHARED_FIXTURE_GROUPS = {"test_cpu_demo_on_cpu.py": "tiny_main_job", "test_eval_on_cpu.py": "tiny_main_job"}

#: Units of work (test files, or the groups above) in the order they are handed to the test workers: the
#: longest first, so that no worker is left running a long one alone at the end. The rest follow in file order.
#: Order from the per-unit times of a two-worker run (2026-12-04, 2-core machine, seconds summed per unit):
#: tiny_main_job 699, offline 277, launch_scripts 236, judge_sft 144, judge_server 95, plugin 95, preflight 58, ...
LONGEST_FIRST = ["tiny_main_job", "test_offline_on_cpu.py", "test_launch_scripts_on_cpu.py", "test_judge_sft_on_cpu.py",
                 "test_judge_server_on_cpu.py", "test_plugin_on_cpu.py", "test_reward_manager_on_cpu.py",
                 "test_judge_prm_on_cpu.py", "test_gpu_readiness_on_cpu.py", "test_preflight_on_cpu.py",
                 "test_grader_on_cpu.py", "test_cpu_trainer_on_cpu.py"]


def work_unit(path: str) -> str:
    """The unit of work of the test file ``path``: its file name, or its group in :data:`SHARED_FIXTURE_GROUPS`."""
    name = Path(path.split("::", 1)[0]).name
    return SHARED_FIXTURE_GROUPS.get(name, name)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: only called when it is installed and -n is given
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Parallel runs (tests/run_tests.sh: ``-n 2``) hand out whole units of work (:func:`work_unit`), so a test
    file's module fixtures (a model, a dataset, a server) and the shared main-job run are built once, on one
    worker. (xdist's own ``--dist loadgroup`` does not group on pytest >= 9.2, which ignores the node id it
    rewrites; ``--dist loadfile`` cannot put two files together.)"""
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the order below: longest first
    return WorkUnitScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Queue the units of work longest first (:data:`LONGEST_FIRST`), files in their order within a unit; a
    serial run keeps this order too."""
    rank = {unit: position for position, unit in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))  # stable


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_main_job(tmp_path_factory) -> dict:
    """One run of the main job on the tiny policy, shared by the tests that need a trained CPU checkpoint
    (tests/test_cpu_demo_on_cpu.py, tests/test_eval_on_cpu.py): each trainer launch costs 60-100 s of Ray
    start-up on 2 cores, so the suite launches this one once. 1 SGPO step, validation before and after,
    a checkpoint at step 1, judged over real HTTP by a loopback judge whose verdicts vary by response
    (tests/judge_endpoints.py "hashed": a step, "none", or no verdict for one in five), with the sgpo
    trainer's per-step advantage dump. Tests must not write into ``run_dir`` (copy it to resume from it)."""
    import subprocess
    import sys

    from judge_endpoints import MisbehavingEndpoint

    root = tmp_path_factory.mktemp("tiny_main_job")
    run_dir, dump_dir = root / "run", root / "advantages"
    with MisbehavingEndpoint() as judge:
        command = [
            sys.executable, "-m", "recipe.sgpo.cpu_demo", "--model", "tiny", "--steps", "1",
            # long enough that most responses end by themselves (a "none" verdict on a cut-off one is no signal)
            "--response-length", "256", "--train-size", "8", "--val-size", "2", "--run-dir", str(run_dir), "--",
            "reward.sgpo.judge.backend=openai", f"reward.sgpo.judge.openai.base_url={judge.url('hashed')}",
            "reward.sgpo.judge.openai.max_retries=0", "reward.sgpo.judge.deadline_s=60",
            f"trainer.sgpo_advantage_dir={dump_dir}",
        ]
        completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    return {"run_dir": run_dir, "dump_dir": dump_dir, "completed": completed, "command": command}


def readable_id(text: str) -> str:
    """A parametrize id of printable ASCII without backslashes. pytest escapes backslashes, control and
    non-ASCII characters in node ids and then cannot select a test by its own node id, which mutmut does
    for every mutant (exit 4, a runner error that mutmut 3.8.1 labels "timeout"; docs/mutation_testing.md).
    Non-ASCII characters are written as their code (``²`` → ``/xb2``)."""
    text = text.replace("\n", "|").replace("\r", "|").replace("\t", " ")
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\\", "/")


def pytest_make_parametrize_id(config, val, argname):
    if isinstance(val, bytes):
        return "bytes-" + readable_id(val.decode("ascii", errors="replace"))
    if isinstance(val, str) and readable_id(val) != val:
        return readable_id(val)
    return None
