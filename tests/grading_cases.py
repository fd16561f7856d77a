"""The grader's specification, shared by the grader's tests (tests/test_grader_on_cpu.py, through worker
processes) and the worker's rules called in-process (tests/test_grade_worker_on_cpu.py)."""

#: How the worker decides a verdict (``GradeResult.method``): math-verify, or a stricter rule.
WORKER_METHODS = ("math_verify", "strict", "base", "unit")

#: A reference that math-verify parses as ``1/3`` only (the ``\mathbf`` terms are lost).
PARTLY_PARSED_REFERENCE = "\\frac{1}{3} \\mathbf{a}_{1} + \\frac{2}{3} \\mathbf{a}_{2}"

#: Answers that make math-verify run for minutes (measured: > 20 s each without a bound).
HANGING_ANSWERS = {
    "power tower": "9^{9^{9^{9}}}",
    "factorial of a huge number": "(10^{10})!",
    "nested fractions": "\\frac{1}{" * 50 + "2" + "}" * 50,
}

# fmt: off
#: (response, ground truth, expected verdict). Grouped by category; comments say why where it is not obvious.
EQUIVALENCE_TABLE = [
    # -- fractions
    ("\\boxed{\\frac{1}{2}}",                       "\\frac12",                 True),
    ("\\boxed{\\dfrac{1}{2}}",                      "1/2",                      True),
    ("\\boxed{2/4}",                                "\\frac{1}{2}",             True),
    ("\\boxed{\\frac{9}{4}}",                       "2\\frac{1}{4}",            True),   # mixed number
    ("\\boxed{\\frac{-1}{2}}",                      "-\\frac12",                True),
    ("\\boxed{\\frac{1}{3}}",                       "\\frac{2}{3}",             False),
    # -- decimals
    ("\\boxed{0.5}",                                "\\frac{1}{2}",             True),
    ("\\boxed{\\frac{9}{4}}",                       "2.25",                     True),
    ("\\boxed{6.0}",                                "6",                        True),
    ("\\boxed{-0.5}",                               "-\\frac{1}{2}",            True),
    ("\\boxed{0.333}",                              "\\frac13",                 False),  # equal only to 6 places
    ("\\boxed{3.14}",                               "\\pi",                     False),
    # -- LaTeX forms and expressions
    ("\\boxed{2\\sqrt{2}}",                         "\\sqrt{8}",                True),
    ("\\boxed{\\frac{\\sqrt{3}}{3}}",               "\\frac{1}{\\sqrt{3}}",     True),
    ("\\boxed{x^2+2x+1}",                           "(x+1)^2",                  True),
    ("\\boxed{10^{3}}",                             "1000",                     True),
    ("\\boxed{1{,}000}",                            "1000",                     True),   # thousands separator
    ("\\boxed{x = 3}",                              "3",                        True),   # the value of an assignment
    ("\\boxed{2i+4}",                               "4+2i",                     True),
    ("\\boxed{\\pi r^2}",                           "r^2\\pi",                  True),
    ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True),
    ("\\boxed{012}",                                "12",                       True),
    ("\\boxed{\\sqrt{3}}",                          "\\sqrt{2}",                False),
    ("\\boxed{-7}",                                 "7",                        False),
    # -- intervals
    ("\\boxed{(1,2)}",                              "(1, 2)",                   True),
    ("\\boxed{\\left( 1, 2 \\right)}",              "(1,2)",                    True),
    ("\\boxed{(-\\infty, 3)}",                      "(-\\infty,3)",             True),
    ("\\boxed{x \\in (1,2)}",                       "(1,2)",                    True),
    ("\\boxed{[0, \\infty)}",                       "[0,\\infty)",              True),
    ("\\boxed{(1,2) \\cup (3,4)}",                  "(3,4)\\cup(1,2)",          True),
    ("\\boxed{(1,2]}",                              "[1,2)",                    False),  # open/closed ends matter
    ("\\boxed{(1,3)}",                              "(1,2)",                    False),
    # -- sets and lists of answers
    ("\\boxed{\\{1,2,3\\}}",                        "\\{3,2,1\\}",              True),
    ("\\boxed{1, 2, 3}",                            "3,2,1",                    True),
    ("\\boxed{\\{1,2\\}}",                          "\\{1,2,3\\}",              False),
    ("\\boxed{1, 2}",                               "1, 2, 3",                  False),
    # -- units
    ("\\boxed{5\\text{ cm}}",                       "5",                        True),
    ("\\boxed{90^\\circ}",                          "90",                       True),
    ("\\boxed{\\$12.50}",                           "12.5",                     True),
    ("\\boxed{50\\%}",                              "50\\%",                    True),
    ("\\boxed{5 \\text{ meters}}",                  "6",                        False),
    ("\\boxed{50\\%}",                              "50",                       False),  # math-verify's choice: 50 % is 0.5
    ("\\boxed{30^\\circ}",                          "\\frac{\\pi}{6}",          False),  # degrees are not converted
    # -- text answers
    ("\\boxed{\\text{Evelyn}}",                     "\\text{Evelyn}",           True),
    ("\\boxed{Evelyn}",                             "\\text{Evelyn}",           True),
    ("\\boxed{\\text{(C)}}",                        "C",                        True),   # multiple-choice letter
    ("\\boxed{\\text{east}}",                       "\\text{west}",             False),
    ("\\boxed{\\text{B}}",                          "\\text{C}",                False),
    ("\\boxed{nylevE}",                             "\\text{Evelyn}",           False),  # not a product of symbols
    # -- several boxes: the last one is the final answer
    ("First \\boxed{3}, corrected: \\boxed{5}",     "5",                        True),
    ("\\boxed{5}, wait, \\boxed{3}",                "5",                        False),
    ("\\boxed{\\boxed{5}}",                         "5",                        True),
    ("\\boxed{2} then \\fbox{7}",                   "7",                        True),
    ("\\fbox{7} then \\boxed{2}",                   "7",                        False),
    # -- no final answer: always wrong
    ("The answer is 5.",                            "5",                        False),  # no box
    ("",                                            "5",                        False),
    ("\\boxed{}",                                   "5",                        False),  # empty box
    ("\\boxed{5} and then \\boxed{5",               "5",                        False),  # last box cut off
    ("so $\\boxed 5$.",                             "5",                        True),   # brace-less \boxed
    # -- reasoning blocks (think_mode=auto): only the text after </think> counts
    ("<think>maybe \\boxed{3}</think> The answer is \\boxed{5}", "5",           True),
    ("<think>I get \\boxed{5}</think> Final: \\boxed{3}",        "5",           False),
    ("<think>so \\boxed{5}",                        "5",                        False),  # reasoning never finished
    ("reasoning \\boxed{3}</think> so \\boxed{5}",  "5",                        True),   # <think> was in the prompt
    ("reasoning \\boxed{5}</think> I am not sure.", "5",                        False),
    # -- reference answers written with a box or dollars
    ("\\boxed{5}",                                  "\\boxed{5}",               True),
    ("\\boxed{5}",                                  "$5$",                      True),
    # -- a parse that lost part of the answer (math-verify: 1/3, 2/3, 2): compared strictly
    ("\\boxed{\\frac{1}{3}}",                       PARTLY_PARSED_REFERENCE,    False),  # the fragment
    ("\\boxed{\\frac13 \\mathbf{a}_1 + \\frac23 \\mathbf{a}_2}", PARTLY_PARSED_REFERENCE, True),
    ("\\boxed{\\frac{2}{3}}",                       "\\frac{1}{3} a_{1} + \\frac{2}{3} a_{2} + \\cdots", False),
    ("\\boxed{2\\mathbf{v}}",                       "2",                        False),  # the answer's parse lost v
    ("\\boxed{\\frac{a_1 + 2a_2}{3}}",              "\\frac{1}{3} a_{1} + \\frac{2}{3} a_{2}", True),  # parsed whole
    ("\\boxed{a_{2}+a_{1}}",                        "a_1+a_2",                  True),
    ("\\boxed{a_1}",                                "a_2",                      False),
    # -- symbols that differ only in case (math-verify reads both as k): compared strictly
    ("\\boxed{K = k}",                              "K = k + 1",                False),
    ("\\boxed{K=k+1}",                              "K = k + 1",                True),
    ("\\boxed{k+1}",                                "k + 1",                    True),
    # -- number bases (math-verify drops the subscript)
    ("\\boxed{41_7}",                               "41_8",                     False),
    ("\\boxed{41_{8}}",                             "41_8",                     True),
    ("\\boxed{41}",                                 "41_8",                     True),   # read in the reference's base
    ("\\boxed{41_7}",                               "41",                       False),  # the reference is base 10
    ("\\boxed{33}",                                 "41_8",                     False),
    # -- unit exponents (math-verify drops units with their exponents)
    ("\\boxed{5\\text{ cm}^3}",                     "5\\text{ cm}^2",           False),
    ("\\boxed{5\\text{ cm}}",                       "5\\text{ cm}^2",           False),
    ("\\boxed{5\\,\\text{cm}^{2}}",                 "5\\text{ cm}^2",           True),
    ("\\boxed{5\\mathrm{m^{3}}}",                   "5\\,\\mathrm{m}^3",        True),
    ("\\boxed{5}",                                  "5\\text{ cm}^2",           True),   # units left out, as above
    ("\\boxed{5\\text{cm²}}",                        "5\\text{ cm}^3",           False),  # a Unicode exponent
    ("\\boxed{5\\text{cm²}}",                        "5\\text{ cm}^2",           True),
    # -- a text wrapper around the whole answer is removed on both sides
    ("\\boxed{\\textbf{(1, 2)}}",                   "(1,2)",                    True),
    ("\\boxed{\\text{(0, \\infty)}}",               "(0,\\infty)",              True),
    ("\\boxed{\\text{(x+1)}}",                      "x+1",                      True),
    ("\\boxed{\\text{(I)}}",                        "I",                        True),   # not the symbol i vs the unit I
    ("\\boxed{\\textbf{(A)}}",                      "\\text{(A)}",              True),
    ("\\boxed{\\textbf{A}}",                        "A",                        True),
    ("\\boxed{\\textbf{(B)}}",                      "A",                        False),
    ("\\boxed{\\text{(1, 3)}}",                     "(1,2)",                    False),
    ("\\boxed{\\text{teas}}",                       "\\text{east}",             False),  # words stay text
]
# fmt: on
