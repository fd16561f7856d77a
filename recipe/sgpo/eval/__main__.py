"""CLI: ``python -m recipe.sgpo.eval run|score|table|curves`` (docs/evaluation.md)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from recipe.sgpo.eval import tables
from recipe.sgpo.eval.families import FAMILY_DEFAULTS, family_defaults

#: Flags that override one field of the family's sampling defaults.
SAMPLING_FLAGS = {"temperature": float, "top_p": float, "top_k": int, "max_prompt_tokens": int,
                  "max_response_tokens": int, "samples": int, "seed": int}


def _run(args: argparse.Namespace) -> int:
    from recipe.sgpo.eval.run import EvalOptions, evaluate

    sampling = family_defaults(args.family)
    sampling = replace(sampling, **{name: getattr(args, name) for name in SAMPLING_FLAGS if getattr(args, name) is not None})
    options = EvalOptions(model=args.model, benchmarks=[Path(p) for p in args.benchmarks], out=Path(args.out),
                          sampling=sampling, family=args.family, method=args.method, model_label=args.model_label,
                          platform=args.platform, nnodes=args.nnodes, gpus_per_node=args.gpus_per_node,
                          extra_overrides=list(args.overrides), dry_run=args.dry_run)
    if args.cache_dir:
        options.cache_dir = Path(args.cache_dir)
    result = evaluate(options)
    if args.dry_run:
        import shlex

        print(shlex.join(result))
    else:
        print(f"[sgpo-eval] results: {result}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from recipe.sgpo.eval.run import score_folder

    path = score_folder(Path(args.folder))
    document = json.loads(path.read_text())
    for name, score in document["benchmarks"].items():
        print(f"{name:16s} Avg@{score['samples_per_problem']} {score['avg']:5.1f}  maj {score['maj']:5.1f}  "
              f"CI [{score['ci_low']:.1f}, {score['ci_high']:.1f}]  std {score['std']:.1f}")
    print(f"[sgpo-eval] results: {path}")
    return 0


def _runs(pairs: Sequence[str]) -> list[tuple[str, Path]]:
    runs = []
    for pair in pairs:
        label, sep, path = pair.partition("=")
        if not sep:
            raise ValueError(f"--log {pair!r}: expected LABEL=PATH (e.g. SGPO=outputs/run/logs/metrics.jsonl)")
        runs.append((label, Path(path)))
    return runs


def _write(table: tables.Table, out: Path | None, formats: Sequence[str]) -> None:
    for fmt in formats:
        text = tables.RENDERERS[fmt](table)
        if out is None:
            print(text)
        else:
            path = out.with_suffix(f".{fmt}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"[sgpo-eval] {path}")


def _table(args: argparse.Namespace) -> int:
    if args.log:
        table = tables.log_table(_runs(args.log))
    else:
        ours = tables.rows_from_results([Path(p) for p in args.results])
        published = [] if args.no_reference else tables.reference_rows({row.model for row in ours})
        table = tables.build_table(ours, published)
    _write(table, Path(args.out) if args.out else None, args.format)
    return 0


def _curves(args: argparse.Namespace) -> int:
    from recipe.sgpo.eval.curves import plot_runs

    drawn = plot_runs(_runs(args.log), Path(args.out))
    print(f"[sgpo-eval] {args.out}: {', '.join(drawn)}")
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m recipe.sgpo.eval", description="Evaluate checkpoints; tables and curves.")
    commands = main.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="generate and grade n samples per problem, one benchmark at a time (resumable)")
    run.add_argument("--model", required=True, help="Hugging Face folder, hub id, or verl global_step_N[/actor]")
    run.add_argument("--benchmarks", nargs="+", required=True, help="parquet files written by `python -m data_prep write`")
    run.add_argument("--out", required=True, help="evaluation folder (resumes when it exists)")
    run.add_argument("--family", choices=sorted(FAMILY_DEFAULTS), required=True, help="sampling defaults (families.py)")
    run.add_argument("--method", default="base model", help="row label in tables: base model, GRPO, SGPO, ...")
    run.add_argument("--model-label", help="model column in tables [the model folder's name]")
    for name, kind in SAMPLING_FLAGS.items():
        run.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help="override the family default")
    run.add_argument("--platform", choices=("gpu", "cpu"), default="gpu", help="cpu: verl's CPU backend (recipe/cpu_backend)")
    run.add_argument("--nnodes", type=int, default=1)
    run.add_argument("--gpus-per-node", type=int, default=8)
    run.add_argument("--cache-dir", help="where merged checkpoints go [cache/eval]")
    run.add_argument("--dry-run", action="store_true", help="check everything, print the first trainer command, run nothing")
    run.add_argument("overrides", nargs="*", help="further hydra overrides for the trainer (after --)")
    run.set_defaults(handler=_run)

    score = commands.add_parser("score", help="(re)score the finished benchmarks of an evaluation folder")
    score.add_argument("folder")
    score.set_defaults(handler=_score)

    table = commands.add_parser("table", help="tables from result files, or from training logs (--log)")
    table.add_argument("results", nargs="*", help="results.json files of `run`/`score`")
    table.add_argument("--log", nargs="+", help="LABEL=PATH of training logs (metrics.jsonl or tensorboard folder)")
    table.add_argument("--format", nargs="+", choices=sorted(tables.RENDERERS), default=["md"])
    table.add_argument("--out", help="path without suffix; one file per format [print]")
    table.add_argument("--no-reference", action="store_true", help="leave out the published numbers")
    table.set_defaults(handler=_table)

    curves = commands.add_parser("curves", help="PNG curves of training logs on shared axes")
    curves.add_argument("--log", nargs="+", required=True, help="LABEL=PATH of training logs")
    curves.add_argument("--out", required=True, help="PNG path")
    curves.set_defaults(handler=_curves)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "table" and not args.results and not args.log:
        print("[sgpo-eval] ERROR: give results.json files or --log LABEL=PATH", file=sys.stderr)
        return 2
    try:
        return args.handler(args)
    except (ValueError, RuntimeError, OSError) as error:
        print(f"[sgpo-eval] ERROR: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
