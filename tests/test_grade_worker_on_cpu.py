"""The math-verify worker's rules called in this process (reward/grade_worker.py).

tests/test_grader_on_cpu.py grades the same specification through real worker processes; here the
worker's functions run in the test process, so each rule is checked on its own and mutation testing
(docs/mutation_testing.md), which only sees code that runs in the test process, reaches them.
"""

from __future__ import annotations

import pytest
from grading_cases import EQUIVALENCE_TABLE, PARTLY_PARSED_REFERENCE

from reward import grade_worker
from reward.answers import extract_final_answer, reference_answer, unwrap_text_wrapper
from reward.grade_worker import (
    answers_equal,
    latex_identifiers,
    math_verify_equal,
    number_bases_agree,
    parse_is_faithful,
    strict_form,
    unit_exponents_agree,
)
from reward.grader import GraderConfig


def worker_pair(response: str, ground_truth: str) -> tuple[str, str] | None:
    """The (answer, reference) the grader sends to a worker for this row, or None if it sends nothing."""
    config = GraderConfig()
    reference = reference_answer(ground_truth)
    found = extract_final_answer(response, config.think_mode, config.max_answer_chars + len(reference))
    if found.answer is None:
        return None
    return unwrap_text_wrapper(found.answer), unwrap_text_wrapper(reference)


WORKER_ROWS = [(*pair, expected) for response, truth, expected in EQUIVALENCE_TABLE
               if (pair := worker_pair(response, truth)) is not None]


def _row_id(row):
    from conftest import readable_id

    answer, reference, expected = row
    return readable_id(f"{answer[:40]}|{reference}|{expected}")


@pytest.mark.parametrize("answer, reference, expected", WORKER_ROWS, ids=map(_row_id, WORKER_ROWS))
def test_every_row_of_the_specification_in_process(answer, reference, expected):
    correct, rule = answers_equal(answer, reference)
    assert correct is expected, rule
    assert math_verify_equal(answer, reference) is expected


@pytest.mark.parametrize("answer, reference, rule", [
    ("41_7", "41_8", "base"),
    ("41_7", "41", "base"),
    ("5\\text{ cm}^3", "5\\text{ cm}^2", "unit"),
    ("\\frac{1}{3}", PARTLY_PARSED_REFERENCE, "strict"),
    ("K = k", "K = k + 1", "strict"),
    ("2\\mathbf{v}", "2", "strict"),
    ("\\frac{1}{2}", "0.5", "math_verify"),
])
def test_each_false_positive_class_is_decided_by_its_rule(answer, reference, rule):
    assert answers_equal(answer, reference)[1] == rule


def test_an_answer_math_verify_cannot_parse_is_wrong_by_math_verify():
    assert answers_equal("\\frac{", "1") == (False, "math_verify")
    assert answers_equal("1", "\\frac{") == (False, "math_verify")
    assert answers_equal("", "1") == (False, "math_verify"), "an empty parse is never equal"


def test_number_bases():
    assert number_bases_agree("41", "41_8")  # no base written: read in the reference's
    assert number_bases_agree("41_{8}", "41_8") and number_bases_agree("41_{ 8 }", "41_8")
    assert number_bases_agree("41_{10}", "41")  # base 10 is the default of a reference without one
    assert not number_bases_agree("41_7", "41")
    assert not number_bases_agree("1011_2 + 7_8", "1011_2 + 7_7")
    assert number_bases_agree("A3_{16}", "A3_{16}") and not number_bases_agree("A3_{16}", "A3_{15}")
    assert number_bases_agree("x_2", "x_3"), "a letter's subscript is no number base"
    assert number_bases_agree("041_{08}", "41_8"), "bases compare as numbers"


def test_unit_exponents():
    assert unit_exponents_agree("5", "5\\text{ cm}^2")  # a side without units: math-verify decides
    assert unit_exponents_agree("5\\text{ cm}^2", "5")
    assert unit_exponents_agree("5\\mathrm{m^{3}}", "5\\,\\mathrm{m}^3")  # inner or outer exponent
    assert unit_exponents_agree("5\\text{cm²}", "5\\text{ cm}^2")  # a Unicode exponent
    assert unit_exponents_agree("5\\text{cm³}", "5\\text{ cm}^{3}")
    assert unit_exponents_agree("5\\text{ cm}^1", "5\\mbox{cm}")  # exponent 1 is no exponent
    assert not unit_exponents_agree("5\\text{ cm}", "5\\text{ cm}^2")
    assert not unit_exponents_agree("5\\text{ cm}^3", "5\\text{ cm}^2")
    assert not unit_exponents_agree("5\\text{cm²}", "5\\text{ cm}^3")
    assert unit_exponents_agree("2\\text{ m}^2 \\cdot 3\\textrm{ s}^3", "\\rm{ s}^{3} \\mbox{m}^{2}"), "a multiset"
    assert not unit_exponents_agree("2\\text{ m}^2 \\text{ s}^2", "\\text{ m}^{2}")
    assert not unit_exponents_agree("5\\text{ m}^{X}", "5\\text{ m}"), "a letter exponent is an exponent"


def test_identifiers_keep_subscripts_and_case_and_skip_prose_and_commands():
    assert latex_identifiers("\\frac{1}{3}\\mathbf{a}_{1} + \\frac{2}{3}\\mathbf{a}_{2}") == {"a_1", "a_2"}
    assert latex_identifiers("K = k + 1") == {"K", "k"}
    assert latex_identifiers("5\\text{ cm} + x") == {"x"}
    assert latex_identifiers("\\begin{pmatrix} y \\\\ 2 \\end{pmatrix}") == {"y"}
    assert latex_identifiers("\\{ z \\}") == {"z"}
    assert latex_identifiers("a_{ 12 } + b_c") == {"a_12", "b_c"}
    assert latex_identifiers("\\sqrt{2} \\cdot \\pi") == set()


def test_a_parse_is_faithful_unless_it_lost_or_merged_an_identifier():
    from math_verify import parse
    from math_verify.parser import LatexExtractionConfig

    def parsed(latex):
        return parse("\\boxed{" + latex + "}", (LatexExtractionConfig(),), parsing_timeout=None)

    assert parse_is_faithful("x + y", parsed("x + y"))
    assert not parse_is_faithful(PARTLY_PARSED_REFERENCE, parsed(PARTLY_PARSED_REFERENCE))  # lost a_1, a_2
    assert not parse_is_faithful("K = k + 1", parsed("K = k + 1"))  # merged
    assert parse_is_faithful("e^{2}", parsed("e^{2}")) and parse_is_faithful("2i + 4", parsed("2i+4"))
    assert parse_is_faithful("\\text{Evelyn}", parsed("\\text{Evelyn}"))
    assert parse_is_faithful("x", []), "an empty parse has nothing to lose"
    assert parse_is_faithful("x", ["x"]), "a plain string is compared as text"
    assert parse_is_faithful("f(x)", parsed("f(x)")), "an undefined function's name counts"
    assert parse_is_faithful("\\vec{a}_1 + b", parsed("\\vec{a}_1 + b")), "braces and backslashes of names dropped"
    # every identifier is checked, also after one that was found (sorted: a, e and i come first here)
    assert not parse_is_faithful("a + z", parsed("a"))
    assert parse_is_faithful("2e", parsed("2e")), "e may be Euler's number (2e parses as 2E)"
    assert not parse_is_faithful("e + y", parsed("2e")), "Euler's number excuses e, not y"
    imaginary = parsed("3 + 2I")  # math-verify reads I as the imaginary unit
    assert parse_is_faithful("3 + 2i", imaginary), "i may be the imaginary unit"
    assert not parse_is_faithful("3 + y", imaginary), "the imaginary unit excuses i, not y"
    assert not parse_is_faithful("2i + z", imaginary), "i excused by the imaginary unit, z still lost"


def test_strict_form_removes_only_what_never_changes_a_value():
    assert strict_form(" $\\dfrac{1}{3}\\,\\mathbf{a}_{1}$ ") == strict_form("\\frac13 \\mathbf{a}_1")
    assert strict_form("\\left( x \\right)") == "(x)"
    assert strict_form("\\tfrac{1}{2}") == "\\frac12"
    assert strict_form("\\textbf{A}") == "A" and strict_form("\\mbox{A}") == "A"
    assert strict_form("{{1}}") == "1"
    assert strict_form("a\\quad b") == "a b", "a space between two letters is kept"
    assert strict_form("a \\qquad+ b") == "a+b"
    assert strict_form("1~2") == "1 2"
    assert strict_form("\\quadratic") == "\\quadratic", "only the spacing command, not a longer name"
    assert strict_form("K=k") != strict_form("K=k+1")
    assert strict_form("\\{1\\}") == "\\{1\\}", "an escaped brace is not a group"
    assert strict_form("X + 1") == "X+1" and strict_form("$X$") == "X", "only dollars and spaces framed"


def test_parsed_references_are_cached_and_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(grade_worker, "REFERENCE_CACHE_SIZE", 2)
    monkeypatch.setattr(grade_worker, "_reference_cache", type(grade_worker._reference_cache)())
    first = grade_worker._parse_reference("1/2")
    assert grade_worker._parse_reference("1/2") is first
    for reference in ("1/3", "1/4", "1/5"):
        grade_worker._parse_reference(reference)
    assert list(grade_worker._reference_cache) == ["1/4", "1/5"], "oldest first out, at most the bound"
    assert grade_worker._parse_reference("1/2") is not first


def test_row_ids_are_selectable_node_ids():
    """pytest escapes backslashes, control and non-ASCII characters in node ids and then cannot select a
    test by that id, which mutation testing does for every mutant: every id here is printable ASCII."""
    from conftest import readable_id

    assert readable_id("5\\text{cm²}\n") == "5/text{cm/xb2}|"
    for row in WORKER_ROWS + [(r, t, e) for r, t, e in EQUIVALENCE_TABLE]:
        row_id = _row_id(row)
        assert row_id.isascii() and row_id.isprintable() and "\\" not in row_id, row_id
