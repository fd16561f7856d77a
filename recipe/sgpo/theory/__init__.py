"""The paper's theory reproduced numerically: a stylized K-step model driven by the shipped estimators.

``model`` (policy, judge, rewards), ``estimators`` (verl's registry), ``exact`` (enumerated expected
update), ``montecarlo`` (sampled runs), ``experiments`` and ``report`` (tables, plots); CLI in
``__main__``. Assumptions, commands and results: ``docs/theory.md``.
"""
