"""Evaluation of checkpoints and the paper's tables (docs/evaluation.md).

Modules: ``checkpoint`` (what a model argument is; FSDP checkpoints merged once), ``families`` (sampling
defaults per model family), ``run`` (verl's validation path, one benchmark at a time, resumable),
``scores`` (Avg@n, pass@k, maj@n, spreads from verl's per-sample jsonl), ``tables`` (Markdown, LaTeX, CSV),
``curves`` (PNG curves from training logs). CLI: ``python -m recipe.sgpo.eval run|score|table|curves``.
"""
