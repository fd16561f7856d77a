"""Offline SGPO: responses generated and judged once, then trained on with verl (docs/offline.md).

The paper reports offline as well as online training but does not define "offline" publicly. Our reading:
the responses to the training prompts are generated once by a fixed model (the starting policy or any
other), graded and judged once with the very grader and judge of the online reward manager, stored, and
the policy is then trained on that fixed set with ``python -m verl.trainer.main_ppo``. The judge never sits
in the training loop, and every training run on a set sees exactly the same responses and rewards.

Three commands (``python -m recipe.sgpo.offline --help``)::

    generate  n responses per prompt, through verl's own rollout servers (vLLM on GPUs, the transformers
              rollout on the CPU) in a validation-only trainer launch; token ids and sampling log-probs kept
    judge     grade every response and judge the wrong ones of all-negative groups (reward.sgpo.* settings)
    check     what a training launch would refuse (group size, tokenizer, judge results), before Ray starts

Training then selects the ``sgpo_offline`` agent loop (every row of the set's ``train.parquet`` names it)
with ``sgpo_offline.set_dir=<set>``; it returns each group member's stored response, reward and reward
extra info, so no generation, grading or judging runs for training rows. Layout of a set: store.py.
"""
