"""Training a step-wise judge: the trained path beside the adapted ones (any OpenAI-compatible server,
verl's reward-model pool, a PRM). Documentation: docs/judge_training.md.

The chain, each piece reused from the rest of the repository:

1. **Examples** — ``python -m data_prep write judge_prm800k judge_math_shepherd judge_arith`` (the judge
   prompt and step segmentation the judge sees during SGPO, the verdict line as target; data_prep/judge_data.py).
2. **Fit** — :mod:`recipe.sgpo.judge_sft.fit` drops (and counts) the rows longer than the trainer's
   ``data.max_length`` with the model's own tokenizer and chat template.
3. **Train** — verl 0.9.1's own SFT trainer with ``recipe/sgpo/config/judge_sft.yaml``: ``torchrun -m
   verl.trainer.sft_trainer`` on GPUs, ``python -m recipe.cpu_backend.sft +sft_platform=cpu`` on a CPU.
4. **Measure** — ``python -m reward.judge.benchmark --dataset judge_file --input data/<name>/test.parquet
   --serve <checkpoint>/huggingface`` before and after (ProcessBench's metrics), and on CHAMP.
5. **Use** — serve the checkpoint's ``huggingface`` folder (vLLM) and train SGPO with the ``openai`` backend.

:mod:`recipe.sgpo.judge_sft.cpu_run` runs the whole chain on a CPU machine for a small judge trained from
scratch on the arithmetic task (:mod:`recipe.sgpo.judge_sft.base_model`).
"""
