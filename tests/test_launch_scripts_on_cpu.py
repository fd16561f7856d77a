"""Every GPU launch script, run as CI can run it: DRY_RUN=1 on a CPU machine.

Each run executes the real script with bash: its preflight composes the full config against verl 0.9.1 and
validates it (the same `python -m recipe.sgpo.preflight` a real launch runs), then the script prints the
command it would run. The tests read that command back and check what each script promises: the
estimator, the judge placement, the sizes (against run_scripts/estimate_memory.py, docs/gpu_runs.md's memory
table), the cluster shape, and that the command-line arguments come last. One printed command is also
handed to verl's own entry point (hydra `--cfg job`: compose and print, no training).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_SCRIPTS = REPO_ROOT / "run_scripts"
sys.path.insert(0, str(RUN_SCRIPTS))
from estimate_memory import RUN_SHAPES  # noqa: E402  run_scripts/ is not a package

#: Every launch script: <algorithm>_<model file>.sh
LAUNCH_SCRIPTS = sorted(path.name for pattern in ("sgpo_*.sh", "grpo_*.sh", "dapo_*.sh") for path in RUN_SCRIPTS.glob(pattern))
MODEL_FILES = sorted(path.stem for path in (RUN_SCRIPTS / "models").glob("*.sh"))
#: Offline SGPO scripts (run_scripts/offline_common.sh), one per model size and kind.
OFFLINE_SCRIPTS = sorted(path.name for path in RUN_SCRIPTS.glob("offline_sgpo_*.sh"))
#: The offline scripts whose training stage is dry-run: the smallest base and the largest distilled (all six are
#: the same two lines over their model file, which the online scripts' dry runs check; each dry run costs ~5 s).
OFFLINE_TRAIN_DRY_RUNS = ["offline_sgpo_qwen2.5-7b.sh", "offline_sgpo_r1-distill-qwen-32b.sh"]
#: Seconds one dry run may take (a preflight composes verl's config in about 5 s on an idle CPU).
DRY_RUN_TIMEOUT_S = 300
PREFLIGHT_PASSED = "[sgpo] preflight passed"


@dataclass
class DryRun:
    """A finished dry run: exit status, output, and the printed command split into words."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def command(self) -> list[str]:
        lines = self.stdout.strip().splitlines()
        assert lines, f"no command printed\nstderr:\n{self.stderr}"
        return shlex.split(lines[-1])

    def overrides(self) -> dict[str, str]:
        """key -> value of the hydra overrides in the command (the last value of a key wins, as in hydra)."""
        words = self.command
        start = words.index("verl.trainer.main_ppo") + 1
        pairs = (word.split("=", 1) for word in words[start:] if "=" in word and not word.startswith("--"))
        return {key: value for key, value in pairs}


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any launch setting a developer may have exported, plus ``settings``."""
    prefixes = ("JUDGE_", "RAY_", "MODEL_PATH", "DATA_DIR", "TRAIN_FILES", "VAL_FILES", "NNODES", "GPUS_PER_NODE", "CKPT_DIR",
                "PROJECT_NAME", "EXPERIMENT_NAME", "LOGGER", "DRY_RUN", "STAGE", "OFFLINE_", "GENERATOR_PATH")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.update({"PYTHON": sys.executable, "DRY_RUN": "1"})
    env.update(settings)
    return env


def dry_run(script: str, *args: str, **settings: str) -> DryRun:
    result = subprocess.run(
        ["bash", str(RUN_SCRIPTS / script), *args], env=clean_env(**settings), cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=DRY_RUN_TIMEOUT_S,
    )
    return DryRun(result.returncode, result.stdout, result.stderr)


#: Variants beyond each script's defaults, run in the same parallel batch: name -> (script, args, env).
VARIANTS = {
    "standalone_on_ray": (
        "sgpo_qwen2.5-32b.sh", ("trainer.total_epochs=3", "actor_rollout_ref.actor.optim.lr=2e-6"),
        {"JUDGE_PLACEMENT": "standalone", "RAY_ADDRESS": "http://head:8265", "JUDGE_MODEL_PATH": "/models/QwQ-32B",
         "JUDGE_NNODES": "1", "JUDGE_TP": "4"},
    ),
    "external_shipped": (
        "sgpo_r1-distill-qwen-14b.sh", (),
        {"RAY_ADDRESS": "http://head:8265", "RAY_SHIP_REPO": "1", "JUDGE_URL": "http://judge-node:8000/v1/",
         "JUDGE_MODEL": "QwQ-32B", "JUDGE_API_KEY_ENV": "SGPO_JUDGE_KEY", "LOGGER": "wandb"},
    ),
    "bad_override": ("grpo_qwen2.5-7b.sh", ("actor_rollout_ref.rollout.n=1",), {}),
    "offline_generate": ("offline_sgpo_r1-distill-qwen-7b.sh", (), {"STAGE": "generate"}),
    "offline_judge": ("offline_sgpo_qwen2.5-7b.sh", (), {"STAGE": "judge", "JUDGE_URL": "http://judge:8000/v1"}),
    "offline_standalone_judge": ("offline_sgpo_qwen2.5-7b.sh", (), {"STAGE": "judge", "JUDGE_PLACEMENT": "standalone"}),
}


@pytest.fixture(scope="module")
def runs() -> dict[str, DryRun]:
    """Every script's default dry run and the variants, in parallel (each is mostly a preflight)."""
    jobs = ({script: (script, (), {}) for script in LAUNCH_SCRIPTS}
            | {script: (script, (), {"STAGE": "train"}) for script in OFFLINE_TRAIN_DRY_RUNS} | VARIANTS)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {name: pool.submit(dry_run, script, *args, **env) for name, (script, args, env) in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def test_there_is_an_sgpo_and_a_grpo_script_for_every_model_and_a_dapo_baseline():
    assert len(MODEL_FILES) == 7  # qwen2.5-math-7b next to qwen2.5-7b (docs/gpu_runs.md "Which 7B base")
    for model in MODEL_FILES:
        assert f"sgpo_{model}.sh" in LAUNCH_SCRIPTS and f"grpo_{model}.sh" in LAUNCH_SCRIPTS
    assert "dapo_qwen2.5-7b.sh" in LAUNCH_SCRIPTS
    assert {shape.model_file for shape in RUN_SHAPES} == set(MODEL_FILES)


@pytest.mark.slow
@pytest.mark.parametrize("script", LAUNCH_SCRIPTS)
def test_each_script_passes_the_preflight_and_prints_verls_entry_point(runs, script):
    run = runs[script]
    assert run.returncode == 0, run.stderr
    assert PREFLIGHT_PASSED in run.stdout + run.stderr
    words = run.command
    if int(run.overrides()["trainer.nnodes"]) > 1:  # no RAY_ADDRESS in CI: the job, with a placeholder address
        assert words[:3] == ["ray", "job", "submit"]
    else:
        assert words[:2] == ["env", "VERL_USE_EXTERNAL_MODULES=recipe.sgpo.plugin"]
    assert words[words.index("-m") + 1] == "verl.trainer.main_ppo"
    assert f"--config-path={REPO_ROOT}/recipe/sgpo/config" in words and "--config-name=sgpo_trainer" in words


@pytest.mark.slow
@pytest.mark.parametrize("script", LAUNCH_SCRIPTS)
def test_each_script_sets_its_algorithm_and_judge(runs, script):
    overrides = runs[script].overrides()
    algorithm = script.split("_", 1)[0]
    if algorithm == "sgpo":  # the default placement: an external OpenAI-compatible judge
        assert overrides["algorithm.adv_estimator"] == "sgpo"
        assert overrides["reward.sgpo.judge.backend"] == "openai"
        assert overrides["reward.sgpo.judge.openai.base_url"] == "http://127.0.0.1:8000/v1"
        assert "reward.reward_model.enable" not in overrides
    else:  # baselines: verl's grpo, the same reward manager with the judge off
        assert overrides["algorithm.adv_estimator"] == "grpo"
        assert overrides["reward.sgpo.judge_scope"] == "off"
        assert not any(key.startswith("reward.sgpo.judge.") for key in overrides)
    if algorithm == "dapo":
        assert overrides["algorithm.filter_groups.enable"] == "True"
        assert overrides["algorithm.filter_groups.metric"] == "acc"
        assert overrides["actor_rollout_ref.actor.clip_ratio_high"] == "0.28"
    else:
        assert "algorithm.filter_groups.enable" not in overrides


@pytest.mark.slow
@pytest.mark.parametrize("shape", RUN_SHAPES, ids=lambda shape: shape.model_file)
def test_every_script_of_a_model_has_the_sizes_the_memory_table_assumes(runs, shape):
    scripts = [script for script in LAUNCH_SCRIPTS if script.split("_", 1)[1] == f"{shape.model_file}.sh"]
    assert scripts
    for script in scripts:
        overrides = runs[script].overrides()
        assert overrides["trainer.nnodes"] == str(shape.nnodes)
        assert overrides["trainer.n_gpus_per_node"] == str(shape.gpus_per_node)
        assert overrides["actor_rollout_ref.rollout.tensor_model_parallel_size"] == str(shape.rollout_tp)
        assert overrides["actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size"] == str(shape.sp)
        assert overrides["actor_rollout_ref.actor.ppo_max_token_len_per_gpu"] == str(shape.token_budget)
        assert overrides["actor_rollout_ref.actor.fsdp_config.param_offload"] == str(shape.param_offload)
        assert overrides["actor_rollout_ref.actor.fsdp_config.optimizer_offload"] == str(shape.optimizer_offload)
        assert float(overrides["actor_rollout_ref.rollout.gpu_memory_utilization"]) == shape.rollout_memory_share
    # a baseline and SGPO of one model differ only in the algorithm and the judge
    sgpo, grpo = (runs[f"{name}_{shape.model_file}.sh"].overrides() for name in ("sgpo", "grpo"))
    shared = {key for key in sgpo.keys() | grpo.keys() if not key.startswith(("reward.sgpo", "algorithm.adv_estimator",
                                                                                 "trainer.experiment_name",
                                                                                 "trainer.default_local_dir"))}
    assert {key: sgpo.get(key) for key in shared} == {key: grpo.get(key) for key in shared}


@pytest.mark.slow
def test_the_overhead_models_copy_of_each_scripts_settings_is_current(runs):
    # recipe/sgpo/overhead/inputs.json copies the settings it needs from the size files; they must not drift
    from recipe.sgpo.overhead import load_inputs

    for model, run in load_inputs()["runs"].items():
        overrides = runs[f"sgpo_{model}.sh"].overrides()
        gpus = int(overrides["trainer.nnodes"]) * int(overrides["trainer.n_gpus_per_node"])
        assert run["train_batch_size"] == int(overrides["data.train_batch_size"]), model
        assert run["n"] == int(overrides["actor_rollout_ref.rollout.n"]), model
        assert run["max_response_length"] == int(overrides["data.max_response_length"]), model
        assert run["gpus"] == gpus, model
        assert run["rollout_replicas"] == gpus // int(overrides["actor_rollout_ref.rollout.tensor_model_parallel_size"])


@pytest.mark.slow
def test_distilled_and_base_models_get_their_lengths_and_their_prompt_templates_data(runs):
    for model in MODEL_FILES:
        overrides = runs[f"grpo_{model}.sh"].overrides()
        total = int(overrides["data.max_prompt_length"]) + int(overrides["data.max_response_length"])
        if model.startswith("r1-distill"):
            assert int(overrides["data.max_response_length"]) >= 16384
            root, train = REPO_ROOT / "data" / "boxed", "deepscaler"
        else:
            assert total <= 4096  # Qwen2.5-Math-7B's max_position_embeddings
            root, train = REPO_ROOT / "data" / "qwen_math", "math_train"
        assert overrides["data.train_files"] == f"['{root}/{train}/train.parquet']"
        val_files = overrides["data.val_files"].strip("[]").split(",")
        assert len(val_files) == 5 and all(name.startswith(f"'{root}/") for name in val_files)


@pytest.mark.slow
def test_the_printed_command_composes_in_verls_own_entry_point(runs):
    """Hand the exact printed command to verl's main_ppo with hydra's --cfg job: it composes, prints, exits."""
    words = runs["sgpo_qwen2.5-7b.sh"].command
    result = subprocess.run([*words, "--cfg", "job"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=DRY_RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["algorithm"]["adv_estimator"] == "sgpo"
    assert config["actor_rollout_ref"]["model"]["path"] == "Qwen/Qwen2.5-7B"
    assert config["actor_rollout_ref"]["rollout"]["tensor_model_parallel_size"] == 2
    assert config["reward"]["sgpo"]["judge"]["backend"] == "openai"


@pytest.mark.slow
def test_a_ray_cluster_run_is_a_job_that_registers_the_recipe_on_every_node(runs):
    run = runs["standalone_on_ray"]
    assert run.returncode == 0, run.stderr
    words = run.command
    assert words[:3] == ["ray", "job", "submit"] and "--address=http://head:8265" in words
    runtime_env = json.loads(next(word for word in words if word.startswith("--runtime-env-json="))
                             .split("=", 1)[1])
    assert runtime_env == {"env_vars": {"VERL_USE_EXTERNAL_MODULES": "recipe.sgpo.plugin",
                                        "PYTHONPATH": str(REPO_ROOT)}}
    assert words[words.index("--") + 1] == sys.executable
    assert f"--config-path={REPO_ROOT}/recipe/sgpo/config" in words


@pytest.mark.slow
def test_the_standalone_judge_gets_its_own_pool_and_routes_verl_to_our_manager(runs):
    overrides = runs["standalone_on_ray"].overrides()
    assert overrides["reward.reward_model.enable"] == "True"
    assert overrides["reward.reward_model.enable_resource_pool"] == "True"
    assert overrides["reward.reward_model.model_path"] == "/models/QwQ-32B"
    assert overrides["reward.reward_model.nnodes"] == "1"
    assert overrides["reward.reward_model.rollout.tensor_model_parallel_size"] == "4"
    assert overrides["reward.reward_model.rollout.free_cache_engine"] == "False"  # else verl never wakes it
    assert overrides["reward.custom_reward_function.path"] == "pkg://reward.grader"
    assert overrides["reward.sgpo.judge.backend"] == "router"


@pytest.mark.slow
def test_command_line_arguments_come_last_and_win(runs):
    run = runs["standalone_on_ray"]
    assert run.command[-2:] == ["trainer.total_epochs=3", "actor_rollout_ref.actor.optim.lr=2e-6"]
    overrides = run.overrides()
    assert overrides["trainer.total_epochs"] == "3" and overrides["actor_rollout_ref.actor.optim.lr"] == "2e-6"


@pytest.mark.slow
def test_a_shipped_repository_uses_a_working_dir_and_the_external_judge_settings(runs):
    run = runs["external_shipped"]
    assert run.returncode == 0, run.stderr
    words = run.command
    runtime_env = json.loads(next(word for word in words if word.startswith("--runtime-env-json=")).split("=", 1)[1])
    assert runtime_env["working_dir"] == str(REPO_ROOT)
    assert ".venv" in runtime_env["excludes"] and "data" in runtime_env["excludes"]
    assert "PYTHONPATH" not in runtime_env["env_vars"]
    assert "--config-dir=recipe/sgpo/config" in words  # read relative to the job's working directory
    overrides = run.overrides()
    assert overrides["reward.sgpo.judge.openai.base_url"] == "http://judge-node:8000/v1"  # trailing / dropped
    assert overrides["reward.sgpo.judge.openai.model"] == "QwQ-32B"
    assert overrides["reward.sgpo.judge.openai.api_key_env"] == "SGPO_JUDGE_KEY"
    assert overrides["trainer.logger"] == "[console,wandb]"


@pytest.mark.slow
def test_a_config_the_preflight_rejects_stops_the_script_before_any_command(runs):
    run = runs["bad_override"]
    assert run.returncode != 0
    assert "actor_rollout_ref.rollout.n=1" in run.stderr and "preflight failed" in run.stderr
    assert "verl.trainer.main_ppo" not in run.stdout


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"JUDGE_PLACEMENT": "colocated"}, "_compute_reward_colocate"),
        ({"JUDGE_PLACEMENT": "somewhere"}, "expected external, standalone or off"),
        ({"LOGGER": "mlflow"}, "expected tensorboard, wandb or console"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_the_reason(settings, message):
    run = dry_run("sgpo_qwen2.5-7b.sh", **settings)
    assert run.returncode == 2
    assert message in run.stderr
    assert run.stdout == ""


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"NNODES": "2"}, "export RAY_ADDRESS"),
        ({"RAY_ADDRESS": "http://head:8265"}, "reward workers run on every node"),  # a localhost judge
    ],
)
def test_a_launch_with_an_unworkable_cluster_shape_stops_before_the_preflight(settings, message):
    # DRY_RUN=0: a real launch. PYTHON=false: had the script gone on, its preflight would fail, not train.
    run = dry_run("sgpo_qwen2.5-7b.sh", DRY_RUN="0", PYTHON="false", **settings)
    assert run.returncode == 2
    assert message in run.stderr and "preflight" not in run.stderr
    assert run.stdout == ""


@pytest.mark.slow
def test_a_dry_run_of_a_multi_node_script_without_a_cluster_warns_and_prints_the_job(runs):
    run = runs["grpo_qwen2.5-32b.sh"]
    assert "WARNING (a launch would stop here): NNODES=2 needs a running Ray cluster" in run.stderr
    words = run.command
    assert words[:3] == ["ray", "job", "submit"] and "--address=http://<ray-head>:8265" in words


def test_the_judge_server_script_prints_the_vllm_command_and_the_endpoint():
    result = subprocess.run(
        ["bash", str(RUN_SCRIPTS / "serve_judge_vllm.sh")], cwd=REPO_ROOT, capture_output=True, text=True,
        env=clean_env(CUDA_VISIBLE_DEVICES="0,1,2,3,4,5,6,7", JUDGE_HOST="10.0.0.5", JUDGE_PORT="8001"),
        timeout=DRY_RUN_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    words = shlex.split(result.stdout.strip().splitlines()[-1])
    assert words[:3] == ["vllm", "serve", "Qwen/QwQ-32B"]
    assert words[words.index("--tensor-parallel-size") + 1] == "2"
    assert words[words.index("--data-parallel-size") + 1] == "4"  # 8 GPUs / TP 2
    assert words[words.index("--served-model-name") + 1] == "QwQ-32B"
    assert "export JUDGE_URL=http://10.0.0.5:8001/v1 JUDGE_MODEL=QwQ-32B" in result.stderr


# --- the multi-node command against a real Ray cluster ------------------------------------------------

#: Seconds to wait for the Ray head (and its dashboard) to come up on a busy 2-core machine.
RAY_START_TIMEOUT_S = 240
#: Seconds between attempts to reach the job agent while it starts.
JOB_AGENT_POLL_S = 3


def _ray_env() -> dict[str, str]:
    # No token: the test cluster is local and short-lived (Ray 2.60 enables token auth by default).
    return clean_env(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
                     PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


@pytest.fixture(scope="module")
def ray_dashboard():
    """A one-node Ray cluster with the job server (dashboard). Every port is chosen free, the job agent's
    too (Ray's default 52365 is taken by any other Ray node on the machine, e.g. a trainer in the other test
    worker: its job agent would never come up), and the cluster's address file stays in its own temp dir, so
    a ``ray.init()`` elsewhere on the machine starts its own cluster instead of joining this one. Stopped by
    signalling its process group (``ray stop`` would stop every Ray node on the machine)."""
    gcs_port, dashboard_port, agent_port = _free_ports(3)
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths live under it
    env = _ray_env()
    env.pop("DRY_RUN")
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", f"--port={gcs_port}", "--num-cpus=1", "--include-dashboard=true",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
         f"--dashboard-agent-listen-port={agent_port}", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        address = f"http://127.0.0.1:{dashboard_port}"
        _wait_for_job_agent(address, head)
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=RAY_START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_job_agent(address: str, head: subprocess.Popen) -> None:
    """The job server answers before the node's job agent registers ("No available agent"): submit a no-op
    job until one is accepted."""
    deadline = time.monotonic() + RAY_START_TIMEOUT_S
    while True:
        assert head.poll() is None, f"the Ray head exited with {head.returncode}"
        result = subprocess.run(["ray", "job", "submit", f"--address={address}", "--", "true"], env=_ray_env(),
                                capture_output=True, text=True, timeout=RAY_START_TIMEOUT_S)
        if result.returncode == 0:
            return
        assert time.monotonic() < deadline, f"the Ray job agent never came up:\n{result.stderr[-2000:]}"
        time.sleep(JOB_AGENT_POLL_S)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["standalone_on_ray", "external_shipped"])
def test_the_printed_job_runs_on_a_real_ray_cluster(runs, ray_dashboard, variant):
    """Submit a printed `ray job submit ...` (its address pointed at a real local cluster) with hydra's
    --cfg job: the job's driver composes the config through verl's main_ppo on the cluster -- runtime-env
    JSON, argument quoting, the config path on shared storage or in the uploaded working_dir -- and exits."""
    words = [f"--address={ray_dashboard}" if word.startswith("--address=") else word for word in runs[variant].command]
    result = subprocess.run([*words, "--cfg", "job"], env=_ray_env(), cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=DRY_RUN_TIMEOUT_S)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "succeeded" in output
    assert "adv_estimator: sgpo" in output
    assert ("backend: router" if variant == "standalone_on_ray" else "base_url: http://judge-node:8000/v1") in output


def test_there_is_an_offline_script_for_base_and_distilled_7b_14b_32b():
    models = {name.removeprefix("offline_sgpo_").removesuffix(".sh") for name in OFFLINE_SCRIPTS}
    assert models == {f"{kind}-{size}" for kind in ("qwen2.5", "r1-distill-qwen") for size in ("7b", "14b", "32b")}


def test_every_offline_script_is_the_same_two_lines_over_its_model_file():
    for script in OFFLINE_SCRIPTS:
        model = script.removeprefix("offline_sgpo_").removesuffix(".sh")
        text = (RUN_SCRIPTS / script).read_text()
        assert f'source "$RUN_SCRIPTS_DIR/models/{model}.sh"' in text and 'source "$RUN_SCRIPTS_DIR/offline_common.sh"' in text
        dataset = "deepscaler" if model.startswith("r1-distill") else "math_train"
        assert f"offline_launch offline_sgpo_{model} {dataset} \"$@\"" in text, script
        assert "algorithm.adv_estimator=sgpo" in text


@pytest.mark.slow
@pytest.mark.parametrize("script", OFFLINE_TRAIN_DRY_RUNS)
def test_each_offline_training_script_trains_the_online_scripts_run_on_its_stored_set(runs, script):
    run = runs[script]
    assert run.returncode == 0, run.stderr
    assert PREFLIGHT_PASSED in run.stdout + run.stderr and "does not exist yet" in run.stderr
    overrides = run.overrides()
    model = script.removeprefix("offline_sgpo_").removesuffix(".sh")
    set_dir = f"{Path.home()}/sgpo_runs/offline_sets/offline_sgpo_{model}"
    assert overrides["data.train_files"] == f"['{set_dir}/train.parquet']"
    assert overrides["sgpo_offline.set_dir"] == set_dir
    assert overrides["algorithm.adv_estimator"] == "sgpo" and overrides["reward.sgpo.judge_scope"] == "off"
    online = runs[f"sgpo_{model}.sh"].overrides()
    differ = ("data.train_files", "sgpo_offline.", "reward.sgpo", "trainer.experiment_name", "trainer.default_local_dir")
    shared = {key for key in online.keys() | overrides.keys() if not key.startswith(differ)}
    assert {key: overrides.get(key) for key in shared} == {key: online.get(key) for key in shared}


@pytest.mark.slow
def test_offline_generation_samples_as_the_online_run_and_records_it(runs):
    run = runs["offline_generate"]
    assert run.returncode == 0, run.stderr
    overrides = run.overrides()
    online = runs["sgpo_r1-distill-qwen-7b.sh"].overrides()
    assert overrides["actor_rollout_ref.rollout.val_kwargs.n"] == online["actor_rollout_ref.rollout.n"] == "8"
    assert float(overrides["actor_rollout_ref.rollout.val_kwargs.temperature"]) == 1.0  # verl's rollout default
    assert overrides["trainer.val_only"] == "True" and overrides["reward.sgpo.judge_scope"] == "off"
    assert overrides["actor_rollout_ref.rollout.calculate_log_probs"] == "True"
    assert overrides["sgpo_offline.record_dir"].endswith("offline_sgpo_r1-distill-qwen-7b/generation/launch-0")
    for key in ("data.max_response_length", "actor_rollout_ref.rollout.tensor_model_parallel_size", "trainer.nnodes"):
        assert overrides[key] == online[key], key


@pytest.mark.slow
def test_offline_judging_takes_the_external_judge_and_refuses_verls_pool(runs):
    run = runs["offline_judge"]
    assert run.returncode == 0, run.stderr
    protocol = json.loads(run.stdout.strip().splitlines()[0])
    assert protocol["backend"] == "openai" and protocol["base_url"] == "http://judge:8000/v1"
    assert protocol["reward_settings"]["judge_scope"] == "all_negative_groups"
    refused = runs["offline_standalone_judge"]
    assert refused.returncode == 2 and "needs JUDGE_PLACEMENT=external" in refused.stderr
