"""Step segmentation (reward/judge/steps.py): the default rule, protected LaTeX/code blocks, think parts, spans."""

from __future__ import annotations

import re
import time

import champ_dataset
import pytest

from reward.judge.steps import (
    judged_prefix,
    judged_part,
    protected_spans,
    segment_response,
    segmentation_from_steps,
    split_steps,
    step_token_spans,
    step_weights,
)


def texts(text: str, **kwargs) -> list[str]:
    return [step.text for step in split_steps(text, **kwargs)]


def test_blank_lines_split_and_single_newlines_are_the_fallback():
    assert texts("First we add the numbers.\n\nThen we multiply them.\n \nFinally subtract.") == [
        "First we add the numbers.", "Then we multiply them.", "Finally subtract."]
    assert texts("17 + 5 = 22\n22 * 3 = 66\n66 - 8 = 58") == ["17 + 5 = 22", "22 * 3 = 66", "66 - 8 = 58"]
    # with at least one blank line, single newlines stay inside steps
    assert texts("a first line here\nsecond line here\n\nanother paragraph") == [
        "a first line here\nsecond line here", "another paragraph"]


def test_short_fragments_join_the_following_step_and_a_short_tail_the_previous():
    steps = texts("Step 1:\n\nWe compute 2 + 2 = 4.\n\nStep 2:\n\nSo the answer is 4.\n\nDone.")
    assert steps == ["Step 1:\n\nWe compute 2 + 2 = 4.", "Step 2:\n\nSo the answer is 4.\n\nDone."]
    assert texts("tiny") == ["tiny"]  # a lone short text is still one step
    assert texts("   \n\n  ") == []


@pytest.mark.parametrize("block", [
    "$$\na + b\n\n= c\n$$",
    "\\[\nx^2 + 1\n\n\\geq 1\n\\]",
    "\\begin{align}\nx &= 1 \\\\\n\n y &= 2\n\\end{align}",
    "\\begin{align*}\n\\begin{cases} a \\\\\n\n b \\end{cases}\n\n\\end{align*}",
    "\\begin{equation}\n\\begin{equation}\ninner\n\n\\end{equation}\n\nstill outer\n\\end{equation}",
    "```python\ndef f(x):\n\n    return x + 1\n```",
    "~~~\ncode\n\nmore code\n~~~",
])
def test_display_math_and_code_are_never_split(block):
    text = f"We start with a sentence.\n\n{block}\n\nAnd we end with another one."
    steps = texts(text)
    assert steps == ["We start with a sentence.", block, "And we end with another one."]


def test_unclosed_blocks_run_to_the_end_and_inline_math_is_not_protected():
    text = "Intro sentence here.\n\n$$\na\n\nb\n\nc"
    assert texts(text) == ["Intro sentence here.", "$$\na\n\nb\n\nc"]
    assert texts("We have $x = 1$.\n\nAnd $y = 2$ too.") == ["We have $x = 1$.", "And $y = 2$ too."]
    # a fence inside display math does not open a code block, and $$ inside code is just code
    code = "```\nprice = $$5\n\nnext\n```"
    assert protected_spans(code) == [(0, len(code))]


def test_max_steps_merges_neighbours_evenly_and_in_order():
    paragraphs = [f"Paragraph number {i} here." for i in range(1, 11)]
    steps = split_steps("\n\n".join(paragraphs), max_steps=4)
    assert [step.text.count("Paragraph") for step in steps] == [3, 3, 2, 2]
    assert steps[0].text.startswith("Paragraph number 1") and steps[-1].text.endswith("number 10 here.")


def test_segmentation_is_deterministic_and_spans_point_into_the_response():
    response = "<think>\nlet me think\n\nhmm\n</think>\n\nFirst step of the answer.\n\n$$\n1 + 1\n\n= 2\n$$\n\nSo \\boxed{2}."
    one, two = segment_response(response), segment_response(response)
    assert one == two
    assert one.part == "answer"
    for step in one.steps:
        assert response[step.start:step.end] == step.text
    assert one.texts == ["First step of the answer.", "$$\n1 + 1\n\n= 2\n$$", "So \\boxed{2}."]


@pytest.mark.parametrize("think_part, expected_part, first", [
    ("answer", "answer", "The answer part."),
    ("think", "think", "Thinking about it."),
    ("all", "all", "<think>Thinking about it."),
])
def test_think_part_setting(think_part, expected_part, first):
    response = "<think>Thinking about it.\n\nMore thinking.</think>The answer part.\n\nIt is \\boxed{3}."
    segmentation = segment_response(response, think_part=think_part)
    assert segmentation.part == expected_part
    assert segmentation.steps[0].text == first


def test_think_fallbacks_truncated_block_and_empty_answer():
    assert judged_part("<think>never closed\n\nstill thinking")[0] == "think"
    truncated = segment_response("<think>never closed here\n\nstill thinking on")
    assert truncated.texts == ["never closed here", "still thinking on"]
    empty_answer = segment_response("<think>all the work is here.\n\nreally.</think>\n  \n")
    assert empty_answer.part == "think" and empty_answer.texts == ["all the work is here.\n\nreally."]
    # a chat template that opened <think> in the prompt: the response starts inside the block
    opened = segment_response("reasoning goes here\n\n</think>final answer text")
    assert opened.part == "answer" and opened.texts == ["final answer text"]


def test_given_steps_and_token_weights():
    response, segmentation = segmentation_from_steps(["aa", "bbbb", "c"])
    assert response == "aa\n\nbbbb\n\nc"
    assert [response[s.start:s.end] for s in segmentation.steps] == ["aa", "bbbb", "c"]
    # characters: step 1 owns "aa\n\n" (4), step 2 "bbbb\n\n" (6), step 3 "c" (1)
    assert step_weights(segmentation, None) == [4.0, 6.0, 1.0]
    tokens = [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 11)]
    assert step_weights(segmentation, tokens) == [2.0, 3.0, 1.0]
    assert step_token_spans(segmentation, tokens) == [(0, 2), (2, 5), (5, 6)]


def _champ_solutions() -> list[str]:
    dataset = champ_dataset.load("v0")
    solutions = []
    for problem in dataset.problems.values():
        solutions.append("\n\n".join(step.text for step in problem.solution.steps))
        solutions.extend(annotation.text for annotation in (problem.fws_annotations or {}).values())
    return solutions


def test_champ_solutions_segment_without_loss_of_text():
    solutions = _champ_solutions()
    assert len(solutions) == 270 + 540
    for text in solutions:
        segmentation = segment_response(text)
        assert 1 <= len(segmentation.steps) <= 30
        # steps are in order, do not overlap, and everything between them is whitespace
        position = 0
        for step in segmentation.steps:
            assert step.start >= position and text[step.start:step.end] == step.text
            assert not text[position:step.start].strip()
            position = step.end
        assert not text[position:].strip()
        assert re.sub(r"\s", "", "".join(segmentation.texts)) == re.sub(r"\s", "", text)


def test_judged_prefix_keeps_the_leading_steps_that_fit():
    response = "First step of the work.\n\nSecond step of it.\n\nThird and last step."  # 23, 18, 20 chars
    segmentation = segment_response(response)
    assert judged_prefix(segmentation, 10_000) is segmentation  # everything fits: the same object
    assert judged_prefix(segmentation, 61) is segmentation
    two = judged_prefix(segmentation, 60)
    assert [step.index for step in two.steps] == [1, 2] and two.steps == segmentation.steps[:2]
    assert two.part_end == segmentation.steps[1].end
    one = judged_prefix(segmentation, 10)  # the first step alone is too long: cut to the cap
    assert one.texts == ["First step"] and response[one.steps[0].start:one.steps[0].end] == "First step"


#: Characters of the small and the large input of the scaling test, and the most the per-character time
#: may grow between them: linear work stays near 1, quadratic work grows by LARGE / SMALL = 16.
SMALL_CHARS, LARGE_CHARS, MAX_PER_CHAR_GROWTH = 10_000, 160_000, 4.0

#: Input shapes that made the old segmentation quadratic: (prefix, repeated unit, suffix, steps expected).
PATHOLOGICAL_SHAPES = {
    "display math": ("", "We write it out.\n\n$$\nx_1 + x_2 = 7\n$$\n\n", "", 30),
    "brackets and a final fence": ("", "Text.\n\n\\[ a \\]\n\n", "```\nprint(1)\n```\nSo \\boxed{8}.", 30),
    "environments": ("", "Now\n\n\\begin{align}\nx &= 1\n\\end{align}\n\n", "", 30),
    "nested environments": ("", "\\begin{cases} a \\begin{cases} b \\end{cases}\n\n\\end{cases}\n\nc and d\n\n", "", 30),
    "fences": ("", "```\ncode\n```\n\nText between fences.\n\n", "", 30),
    "single newlines": ("", "17 + 5 = 22\n$$x$$\n", "", 30),
    "one unclosed block": ("\\begin{align}\n", "Text of a step.\n\n", "", 1),
}


def _fastest_segmentation_s(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        segment_response(text)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("shape", sorted(PATHOLOGICAL_SHAPES))
def test_segmentation_time_grows_linearly_with_the_response(shape):
    prefix, unit, suffix, expected_steps = PATHOLOGICAL_SHAPES[shape]
    small = prefix + unit * (SMALL_CHARS // len(unit)) + suffix
    large = prefix + unit * (LARGE_CHARS // len(unit)) + suffix
    assert len(segment_response(large).steps) == expected_steps  # the blocks were really found
    per_char_small = _fastest_segmentation_s(small) / len(small)
    per_char_large = _fastest_segmentation_s(large) / len(large)
    assert per_char_large < MAX_PER_CHAR_GROWTH * per_char_small
