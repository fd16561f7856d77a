"""The judge-quality benchmark: metrics, dataset loaders (CHAMP, ProcessBench format, arith), the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from reward.judge import JudgeConfig
from reward.judge.benchmark import arith_samples, champ_samples, processbench_samples, score


def test_processbench_metrics():
    labels = [2, 3, None, None, 1]
    predictions = [2, 1, None, 4, 1]
    metrics = score(labels, predictions, [True, True, True, True, False])
    assert metrics["error_acc"] == pytest.approx(1 / 3)  # the last one was not judged: a miss
    assert metrics["correct_acc"] == pytest.approx(1 / 2)
    assert metrics["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert metrics["exact"] == pytest.approx(2 / 5) and metrics["not_judged"] == pytest.approx(1 / 5)
    assert math.isnan(score([1], [1], [True])["correct_acc"])


def test_champ_labels_point_at_the_annotated_text():
    samples = champ_samples(JudgeConfig())
    assert len(samples) == 540 and sum(s.label is None for s in samples) == 96
    from reward.judge.steps import segment_response
    import champ_dataset

    dataset = champ_dataset.load("v0")
    for sample in samples[:120]:
        if sample.label is None:
            continue
        problem_id, source = sample.sample_id.split("|", 1)
        annotation = dataset.problems[problem_id].fws_annotations[source]
        step = segment_response(sample.request.response).steps[sample.label - 1]
        # the annotated first wrong character lies in the labelled step (or the whitespace just before it)
        previous_end = segment_response(sample.request.response).steps[sample.label - 2].end if sample.label > 1 else 0
        assert previous_end <= annotation.start_idx < step.end


def test_processbench_format(tmp_path):
    rows = [{"id": "a", "problem": "p", "steps": ["s1", "s2"], "label": 1, "final_answer_correct": False},
            {"id": "b", "problem": "q", "steps": ["t1"], "label": -1, "final_answer_correct": True}]
    path = tmp_path / "pb.json"
    path.write_text(json.dumps(rows))
    samples = processbench_samples(path)
    assert [s.label for s in samples] == [2, None] and samples[0].request.steps == ("s1", "s2")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"problem": "p"}) + "\n")
    with pytest.raises(ValueError, match="lacks steps, label"):
        processbench_samples(tmp_path / "bad.jsonl")


def test_arith_set_is_seeded_and_balanced():
    first, second = arith_samples(20), arith_samples(20)
    assert first == second and sum(s.label is not None for s in first) == 10


def test_cli_with_the_rule_verifier(tmp_path):
    out = tmp_path / "rows.jsonl"
    result = subprocess.run([sys.executable, "-m", "reward.judge.benchmark", "--dataset", "arith", "--arith-size", "40",
                             "--set", "backend=rule", "--output", str(out)], capture_output=True, text=True, check=True)
    metrics = json.loads(result.stdout.splitlines()[0])
    assert metrics["f1"] == 1.0 and metrics["exact"] == 1.0 and metrics["prompt"] == "v1"
    assert len(out.read_text().splitlines()) == 40
    bad = subprocess.run([sys.executable, "-m", "reward.judge.benchmark", "--dataset", "arith",
                          "--set", "openai.timeout_s=-3"], capture_output=True, text=True)
    assert bad.returncode == 2 and "reward.sgpo.judge.openai.timeout_s" in bad.stderr
