"""Policies for the end-to-end CPU trainer tests, trained by the tests themselves in seconds.

``build_coin_policy`` makes groups whose outcomes the test controls (mixed, or all-negative with graded
values that differ), which a random tiny policy cannot: its gibberish is never right.
"""

from __future__ import annotations

from pathlib import Path


def build_coin_policy(out_dir: Path, rows: list[dict], steps: int = 300, seed: int = 0,
                      wrong_rows: frozenset[int] = frozenset()) -> Path:
    """A tiny policy that has memorised the answers of ``rows`` and boxes, for each, the right answer or
    the answer plus one, about half the time each: groups of such responses are mostly mixed (some
    members right, some wrong), the case where SGPO must equal GRPO. For the rows in ``wrong_rows`` it
    instead writes the (one-line) reference solution and one of two wrong endings, about half the time
    each: the right line and a wrong boxed answer (the rule verifier's first error: step 2 of 2), or the
    line's result and the box both off by one (first error: step 1), so their groups are all-negative with
    graded values that differ. Built with the arithmetic policy's tokenizer, model and training loop
    (data_prep/arith_policy.py) in a few seconds."""
    import torch

    from data_prep.arith_policy import (ArithPolicyConfig, build_tokenizer, encode_chat_examples, new_policy_model,
                                        pretrain, render_chatml, save_policy)

    prompts = [list(row["prompt"]) for row in rows]
    completions = []
    for index, row in enumerate(rows):
        answer = int(row["reward_model"]["ground_truth"])
        if index in wrong_rows:
            line = row["extra_info"]["reference_solution"].splitlines()[-1]
            left = line.rsplit("= ", 1)[0]
            completions.append([f"{line}\n\\boxed{{{answer + 1}}}", f"{left}= {answer + 1}\n\\boxed{{{answer + 1}}}"])
        else:
            completions.append([f"\\boxed{{{answer}}}", f"\\boxed{{{answer + 1}}}"])
    solutions = [completion for pair in completions for completion in pair]
    tokenizer = build_tokenizer([render_chatml(p) for p in prompts] + solutions, vocab_size=320)
    examples = encode_chat_examples(tokenizer, [prompt for prompt, pair in zip(prompts, completions) for _ in pair],
                                    solutions)
    settings = ArithPolicyConfig(seed=seed, train_steps=steps, warmup_steps=10, batch_size=16, lr=3e-3, hidden_size=64,
                                 intermediate_size=128, num_hidden_layers=2, num_attention_heads=2)
    torch.manual_seed(seed)
    model = new_policy_model(tokenizer, settings)
    pretrain(model, tokenizer, examples, settings, lambda step, loss: None)
    save_policy(model, tokenizer, out_dir)
    return out_dir
