"""CLI: ``python -m recipe.sgpo.overhead [--inputs FILE] [--seed N] [--markdown]`` prints the predicted
SGPO / GRPO step-time ratio and judge calls per step for every launch script, judge, phase and schedule."""

from __future__ import annotations

import argparse
import sys

from recipe.sgpo.overhead import INPUTS_PATH, load_inputs, prediction_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipe.sgpo.overhead", description=__doc__)
    parser.add_argument("--inputs", default=str(INPUTS_PATH), help="input table (JSON, as recipe/sgpo/overhead/inputs.json)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn batch (lengths, outcomes)")
    parser.add_argument("--markdown", action="store_true", help="one row per run x judge, as in docs/judge_overhead.md")
    args = parser.parse_args(argv)
    try:
        rows = prediction_table(load_inputs(args.inputs), args.seed)
    except (OSError, KeyError, ValueError) as error:
        print(f"error: cannot use --inputs {args.inputs}: {error!r} (see recipe/sgpo/overhead/inputs.json)", file=sys.stderr)
        return 2
    if args.markdown:
        print_markdown(rows)
    else:
        for row in rows:
            print(f"{row['run']:22s} {row['judge']:18s} {row['phase']:6s} {row['schedule']:12s} ratio {row['ratio']:.2f} "
                  f"grpo {row['grpo_step_s']:.0f} s  sgpo {row['step_s']:.0f} s  calls {row['judge_calls']} "
                  f"(wasted {row['wasted_calls']})")
    return 0


def print_markdown(rows: list[dict]) -> None:
    cells = {(r["run"], r["judge"], r["phase"], r["schedule"]): r for r in rows}
    print("| launch script | judge | GRPO step s (early) | early: after_group | early: eager | late: after_group | late: eager |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for run, judge in dict.fromkeys((r["run"], r["judge"]) for r in rows):
        def cell(phase, schedule):
            row = cells[(run, judge, phase, schedule)]
            return f"{row['ratio']:.2f} ({row['judge_calls']} calls, {row['wasted_calls']} wasted)"
        grpo = cells[(run, judge, "early", "after_group")]["grpo_step_s"]
        print(f"| {run} | {judge} | {grpo:.0f} | {cell('early', 'after_group')} | {cell('early', 'eager')} | "
              f"{cell('late', 'after_group')} | {cell('late', 'eager')} |")


if __name__ == "__main__":
    raise SystemExit(main())
