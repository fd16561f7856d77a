"""The SGPO-vs-GRPO comparison's bookkeeping (tests/benchmarks/compare_sgpo_grpo_cpu.py).

The runs themselves are the main job (tested in test_cpu_demo_on_cpu.py); here: which runs are planned,
how a finished run is recognised, and that the table's means and spreads over seeds are the figures the
runs logged (metrics files in verl's file-logger format, written by the test).
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

from recipe.sgpo.cpu_demo import DemoOptions

SCRIPT = Path(__file__).resolve().parent / "benchmarks" / "compare_sgpo_grpo_cpu.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_sgpo_grpo_cpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _write_run(folder: Path, validation: dict[int, float], all_negative: float, step_s: float, steps: int) -> None:
    logs = folder / "logs"
    logs.mkdir(parents=True)
    (folder / "rollouts").mkdir()
    for step in range(1, steps + 1):
        # verl's rollout dump: step 1 guesses half the time, later steps work every solution
        outputs = [("1 + 2 = 3\n\\boxed{3}", 1.0), ("1 + 2 = 4\n\\boxed{4}", 0.1)]
        outputs += [("\\boxed{5}", 0.0)] * 2 if step == 1 else [("1 + 2 = 3\n\\boxed{3}", 1.0)] * 2
        (folder / "rollouts" / f"{step}.jsonl").write_text(
            "".join(json.dumps({"output": text, "score": score, "step": step}) + "\n" for text, score in outputs))
    with (logs / "metrics.jsonl").open("w") as out:
        for step in range(steps + 1):
            data = {}
            if step in validation:
                data["val-core/sgpo/arith/correct/mean@4"] = validation[step]
            if step > 0:
                data.update({"timing_s/step": step_s, "sgpo/accuracy": 0.25, "sgpo/groups/all_negative_share": all_negative,
                             "sgpo/advantage/all_negative_nonzero_share": 0.0})
            out.write(json.dumps({"step": step, "data": data}) + "\n")


def test_every_seed_runs_both_estimators_and_ablations_run_once(compare):
    runs = [(variant.name, seed) for variant, seed in compare.plan([3, 4], ablations=True)]
    assert runs == [("grpo", 3), ("sgpo", 3), ("grpo", 4), ("sgpo", 4), ("sgpo-all_incorrect", 3), ("sgpo-linear", 3)]
    all_incorrect = compare.run_options(DemoOptions(extra_overrides=["trainer.x=1"]), compare.ABLATIONS[0], 3, Path("/o"))
    # the ablation needs the judge on mixed groups' wrong answers too, or the preflight refuses it
    assert all_incorrect.extra_overrides == ["trainer.x=1", "algorithm.sgpo.apply_to=all_incorrect",
                                             "reward.sgpo.judge_scope=all_wrong"]
    assert all_incorrect.estimator == "sgpo" and all_incorrect.seed == 3
    assert all_incorrect.run_dir == Path("/o/sgpo-all_incorrect/seed3")


def test_a_run_is_finished_only_when_its_last_step_was_logged(compare):
    assert compare.is_finished({0: {"val-core/x": 1.0}, 30: {"timing_s/step": 4.0}}, 30)
    assert not compare.is_finished({0: {}, 29: {"timing_s/step": 4.0}}, 30)
    assert not compare.is_finished({30: {"val-core/x": 1.0}}, 30)  # validated, but the step's own record is missing


def test_table_reports_mean_and_spread_over_seeds(compare, tmp_path, monkeypatch):
    base = DemoOptions(steps=2)
    runs = compare.plan([0, 1, 2], ablations=False)
    figures = {("grpo", 0): {0: 0.1, 2: 0.2}, ("grpo", 1): {0: 0.1, 2: 0.3}, ("grpo", 2): {0: 0.1, 2: 0.4},
               ("sgpo", 0): {0: 0.1, 2: 0.5}, ("sgpo", 1): {0: 0.1, 2: 0.6}, ("sgpo", 2): {0: 0.1, 2: 0.9}}
    for variant, seed in runs:
        _write_run(compare.run_options(base, variant, seed, tmp_path).folder, figures[variant.name, seed],
                   all_negative=0.5 if variant.name == "grpo" else 0.25, step_s=2.0 if variant.name == "grpo" else 3.0,
                   steps=2)
    monkeypatch.setattr(compare, "BEHAVIOUR_WINDOW", 1)  # first and last of two steps
    folders = {}
    for variant, seed in runs:
        folders.setdefault(variant.name, []).append(compare.run_options(base, variant, seed, tmp_path).folder)
    summary = compare.summarize(compare.load(base, runs, tmp_path), folders, steps=2)
    behaviour = summary["variants"]["sgpo"]["behaviour"]
    assert behaviour["guess_share/first"] == pytest.approx(0.5) and behaviour["guess_share/last"] == 0.0
    assert behaviour["worked_accuracy/first"] == pytest.approx(0.5) and behaviour["worked_accuracy/last"] == pytest.approx(0.75)
    final = {name: summary["variants"][name]["validation"][-1] for name in ("grpo", "sgpo")}
    assert final["sgpo"]["step"] == 2 and final["sgpo"]["seeds"] == 3
    assert final["sgpo"]["mean"] == pytest.approx(statistics.fmean([0.5, 0.6, 0.9]))
    assert final["sgpo"]["std"] == pytest.approx(statistics.stdev([0.5, 0.6, 0.9]))
    assert final["grpo"]["mean"] == pytest.approx(0.3) and final["grpo"]["std"] == pytest.approx(0.1)
    assert summary["variants"]["grpo"]["training"]["all_negative_share"] == pytest.approx(0.5)
    assert summary["time_ratio"] == pytest.approx(1.5)
    table = compare.render_markdown(summary, "cmd")
    assert "| 2 | 30.0 ± 10.0 % | 66.7 ± 20.8 % |" in table
    assert "**1.50**" in table
    compare.plot(summary, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 10_000
