"""The CPU main job's pre-trained arithmetic policy (``data_prep/arith_policy.py``): its pre-training data
(slips at known steps, chains that stay well-formed), its tokenizer (what verl will feed it), the build's
cache and determinism. The policy's quality is measured by the build itself (its report) and by the main
job, not asserted here: a test build is a few optimizer steps.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from data_prep.arith import STEP_INSTRUCTION, ArithConfig, generate, generate_problems
from data_prep.arith_policy import (
    IGNORE_INDEX,
    ArithPolicyConfig,
    build_arith_policy,
    build_report,
    build_tokenizer,
    check_tokenizer_round_trip,
    digit_gaps,
    encode_example,
    encode_examples,
    new_policy_model,
    render_chatml,
    prompt_messages,
    slipped_solution,
    task_config,
    _build_arith_policy,
)
from data_prep.staged_output import exclusive_build

REPO_ROOT = Path(__file__).resolve().parents[1]

STEP = re.compile(r"^(\d+) ([+-]) (\d+) = (\d+)$")
#: A build of seconds: the settings are what is tested, not the policy's skill.
SMALL = ArithPolicyConfig(pretrain_problems=64, train_steps=3, warmup_steps=1, batch_size=4,
                          report_problems_per_length=2, max_new_tokens=8, hidden_size=32, intermediate_size=64,
                          num_hidden_layers=1, num_attention_heads=2, vocab_size=300,
                          habit_problems=16, habit_steps=2, habit_warmup_steps=1)


def problems(count=200, seed=3):
    return generate_problems(count, seed, split="pretrain", config=task_config())


def parse(solution: str) -> tuple[list[tuple[int, str, int, int]], str]:
    *lines, box = solution.split("\n")
    steps = [tuple(int(g) if g.isdigit() else g for g in STEP.match(line).groups()) for line in lines]
    return steps, box


def test_without_slips_the_solution_is_the_reference_and_its_box():
    config = replace(ArithPolicyConfig(), step_error_rate=0.0)
    for problem in problems():
        assert slipped_solution(problem, random.Random(0), config) == f"{problem.solution}\n\\boxed{{{problem.answer}}}"


def test_slips_are_wrong_results_the_next_step_continues_from():
    config = replace(ArithPolicyConfig(), step_error_rate=0.3, max_error=4)
    rng, slips, steps_seen = random.Random(0), 0, 0
    for problem in problems():
        steps, box = parse(slipped_solution(problem, rng, config))
        assert [(op, b) for _, op, b, _ in steps] == [(op, b) for _, op, b, _ in problem.steps]
        assert steps[0][0] == problem.steps[0][0]
        for (a, op, b, c), following in zip(steps, steps[1:] + [None]):
            true = a + b if op == "+" else a - b
            assert 0 <= c <= task_config().max_value and abs(c - true) <= 4
            slips += c != true
            if following is not None:
                assert following[0] == c  # the chain continues from what was written
        assert box == f"\\boxed{{{steps[-1][3]}}}"
        steps_seen += len(steps)
    assert 0.2 < slips / steps_seen < 0.35  # about the asked-for rate (a few steps have no in-range slip)


def test_the_guessing_habit_boxes_a_near_miss_without_steps_at_the_asked_rate():
    config = replace(ArithPolicyConfig(), max_error=4)
    rng, guesses, sample = random.Random(0), 0, problems(400)
    for problem in sample:
        solution = slipped_solution(problem, rng, config, guess_rate=0.5)
        if "\n" in solution:
            parse(solution)  # a worked solution, slips and all
            continue
        guesses += 1
        guess = int(re.fullmatch(r"\\boxed\{(\d+)\}", solution).group(1))
        assert abs(guess - problem.answer) <= 4 and 0 <= guess <= task_config().max_value
    assert 0.42 < guesses / len(sample) < 0.58


def test_tokenizer_spells_numbers_by_digit_round_trips_and_keeps_the_instruction_whole():
    sample = problems(50)
    texts = [render_chatml(prompt_messages(p)) for p in sample] + [p.solution for p in sample]
    tokenizer = build_tokenizer(texts, vocab_size=400)
    for text in ["1234 + 56 = 1290\n\\boxed{1290}", texts[0], "unseen words: ünïcode ✓"]:
        assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    digits = tokenizer.convert_ids_to_tokens(tokenizer("90817", add_special_tokens=False)["input_ids"])
    assert digits == list("90817")
    instruction_ids = tokenizer(STEP_INSTRUCTION, add_special_tokens=False)["input_ids"]
    assert len(instruction_ids) == 1


def _round_trip_examples(sample):
    slips = random.Random(0)
    return [(f"problem {i}", prompt_messages(p), slipped_solution(p, slips, SMALL, guess_rate=0.3))
            for i, p in enumerate(sample)]


def test_the_tokenizer_verl_loads_encodes_like_the_one_the_policy_is_trained_with():
    """transformers loads a ``qwen2`` folder's tokenizer as Qwen2Tokenizer, replacing the saved pre-tokenizer:
    the default tokenizer survives that, one whose merges span " + " does not, and the build's check says so."""
    sample = problems(60)
    texts = [render_chatml(prompt_messages(p)) for p in sample] + [p.solution for p in sample]
    examples = _round_trip_examples(sample)
    default = build_tokenizer(texts, vocab_size=400)
    check_tokenizer_round_trip(new_policy_model(default, SMALL), default, examples)  # raises if it differs

    merged = build_tokenizer(texts, vocab_size=400, split_words=False)
    # one token for the operator and both its spaces (byte-level: the space is "\u0120")
    assert "\u0120+\u0120" in merged.convert_ids_to_tokens(merged("7 + 9 = 16", add_special_tokens=False)["input_ids"])
    assert len(encode_examples(merged, sample, [p.solution for p in sample])[0][0]) < \
        len(encode_examples(default, sample, [p.solution for p in sample])[0][0])
    with pytest.raises(ValueError, match="architecture='llama'") as error:
        check_tokenizer_round_trip(new_policy_model(merged, SMALL, architecture="qwen2"), merged, examples)
    assert "problem 0" in str(error.value) and "Qwen2Tokenizer" in str(error.value)
    check_tokenizer_round_trip(new_policy_model(merged, SMALL, architecture="llama"), merged, examples)
    with pytest.raises(ValueError, match="architecture='gpt2'"):
        new_policy_model(merged, SMALL, architecture="gpt2")


def test_gap_tokens_shorten_the_texts_and_survive_the_qwen2_loader():
    """``gap_tokens=True``: each recurring stretch between digits is one added token, so a Qwen2 folder (whose
    loader swaps the pre-tokenizer) still encodes as the build does, with fewer tokens, and decodes exactly."""
    sample = problems(60)
    texts = [render_chatml(prompt_messages(p)) for p in sample] + [p.solution for p in sample]
    examples = _round_trip_examples(sample)
    gaps = digit_gaps(texts)
    assert {" + ", " = ", "assistant\n"} <= set(gaps)
    assert all(not any(c.isdigit() for c in gap) and len(gap) >= 2 for gap in gaps)
    default = build_tokenizer(texts, vocab_size=400)
    short = build_tokenizer(texts, vocab_size=400, gap_tokens=True)
    assert len(short) == len(default) + len(gaps)
    assert short.convert_ids_to_tokens(short("7 + 9 = 16", add_special_tokens=False)["input_ids"]) == \
        ["7", " + ", "9", " = ", "1", "6"]
    solutions = [solution for _, _, solution in examples]
    default_ids = encode_examples(default, sample, solutions)
    short_ids = encode_examples(short, sample, solutions)
    assert sum(len(ids) for ids, _ in short_ids) < 0.8 * sum(len(ids) for ids, _ in default_ids)
    for (ids, _), (chat_ids, _) in zip(short_ids[:5], default_ids[:5]):
        assert short.decode(ids) == default.decode(chat_ids)  # the same text, in fewer tokens
    check_tokenizer_round_trip(new_policy_model(short, SMALL, architecture="qwen2"), short, examples)


def test_training_sequences_are_the_tokens_verl_renders_from_the_parquet_rows(tmp_path):
    policy = build_arith_policy(tmp_path / "policy", SMALL, show_progress=False)
    from transformers import AutoTokenizer

    from verl.utils.tokenizer.chat_template import apply_chat_template

    tokenizer = AutoTokenizer.from_pretrained(policy)
    rows = generate(5, seed=11, split="val", config=task_config())
    problems = generate_problems(5, 11, split="val", config=task_config())
    solutions = [f"1 + 2 = 3\n\\boxed{{{index}}}" for index in range(5)]
    batched = encode_examples(tokenizer, problems, solutions)  # the build's path: one batched call
    for row, problem, solution, encoded in zip(rows, problems, solutions, batched):
        verl_ids = apply_chat_template(tokenizer, list(row["prompt"]), tokenize=True, add_generation_prompt=True)
        assert encoded == encode_example(tokenizer, problem, solution)
        ids, labels = encoded
        assert ids[: len(verl_ids)] == list(verl_ids)
        assert labels[: len(verl_ids)] == [IGNORE_INDEX] * len(verl_ids)
        assert labels[len(verl_ids):] == ids[len(verl_ids):] and ids[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(ids[len(verl_ids):-1]) == solution
    with pytest.raises(ValueError, match="5 prompts but 4 solutions"):
        encode_examples(tokenizer, problems, solutions[:4])


def test_build_is_cached_deterministic_and_rebuilt_when_a_setting_changes(tmp_path):
    first = build_arith_policy(tmp_path / "a", SMALL, show_progress=False)
    weights = (first / "model.safetensors").read_bytes()
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert build_arith_policy(first, SMALL, show_progress=False) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # cached: not rebuilt
    assert build_arith_policy(tmp_path / "b", SMALL, show_progress=False).joinpath("model.safetensors").read_bytes() == weights
    report = build_report(first)
    assert report["settings"]["train_steps"] == 3
    assert set(report["sampled_accuracy_by_operations"]) == {"1", "2", "3", "4"}
    other = replace(SMALL, seed=1)
    build_arith_policy(first, other, show_progress=False)
    assert build_report(first)["settings"]["seed"] == 1
    assert (first / "model.safetensors").read_bytes() != weights
    # no staging folder left behind (the build's lock files stay, empty)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.suffix != ".lock"]


def _blocked_on_a_lock(pid: int) -> bool:
    """True when process ``pid`` waits for a file lock (Linux ``/proc/locks`` lists waiters with ``->``)."""
    return any(line.split()[1] == "->" and line.split()[5] == str(pid)
               for line in Path("/proc/locks").read_text().splitlines() if "->" in line)


def test_a_second_process_waits_for_a_build_in_progress_and_reuses_it(tmp_path):
    """Two runs that need the same uncached policy at once build it once: the second waits for the first,
    then finds the folder complete (without the lock it would build again and rename its copy over the
    folder the first is reading). This test plays the first process: it holds the build lock and builds."""
    target = tmp_path / "policy"
    code = ("import json, sys; from data_prep.arith_policy import ArithPolicyConfig, build_arith_policy; "
            "print(build_arith_policy(sys.argv[1], ArithPolicyConfig(**json.loads(sys.argv[2]))))")
    with exclusive_build(target):
        second = subprocess.Popen([sys.executable, "-c", code, str(target), json.dumps(asdict(SMALL))], cwd=REPO_ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not _blocked_on_a_lock(second.pid) and second.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert second.poll() is None, f"the second process did not wait for the build: {second.communicate()}"
        _build_arith_policy(target, SMALL, show_progress=False)
        stamp = (target / "model.safetensors").stat().st_mtime_ns
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert out.strip() == str(target)
    assert "pre-training the arithmetic policy" not in err  # it did not build
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp


def test_the_task_config_is_valid_and_the_validation_problems_are_unseen():
    config = task_config()
    assert isinstance(config, ArithConfig) and set(config.operations) == {"+", "-"}
    pretraining = {p.expression for p in generate_problems(ArithPolicyConfig().pretrain_problems, 0,
                                                           split="pretrain", config=config)}
    # The main job's default validation set (seed 0, 32 problems, 1-4 operations).
    validation = generate_problems(32, 0, split="val", config=config,
                                   exclude={p.expression for p in generate_problems(256, 0, split="train", config=config)})
    seen = [len(p.steps) for p in validation if p.expression in pretraining]
    # Short problems are few (about 700 with one operation, 25,000 with two): pre-training's 20,000 draws
    # cover most one-operation problems and some two-operation ones (docs/cpu_training.md says so); longer
    # ones are practically never seen.
    assert seen and max(seen) <= 2, seen
    assert sum(len(p.steps) >= 3 for p in validation) >= 8
