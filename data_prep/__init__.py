"""Data preparation: public math datasets (and a synthetic arithmetic task) -> verl parquet.

``python -m data_prep list`` shows what it knows; ``python -m data_prep write <names>`` writes
``data/<name>/<split>.parquet`` with a manifest next to each file. See docs/data_prep.md.

Public API:

* :func:`data_prep.pipeline.prepare` / :class:`data_prep.pipeline.PrepareOptions` — the command's work.
* :data:`data_prep.registry.REGISTRY` — one :class:`~data_prep.registry.DatasetSpec` per dataset.
* :data:`data_prep.templates.TEMPLATES` — the prompt templates (``boxed``, ``qwen_math``, ``none``).
* :func:`data_prep.arith.generate` — verl rows of the synthetic multi-step arithmetic task.
* :data:`data_prep.schema.ROW_SCHEMA` — the Arrow schema of every file.

(``data_prep/models.py``, model conversion, is a separate tool.)
"""
