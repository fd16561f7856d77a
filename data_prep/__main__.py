"""Command line: ``python -m data_prep {list,write,chat-template} ...`` (see ``--help`` of each).

Examples::

    python -m data_prep list                                   # datasets, groups, templates
    python -m data_prep write benchmarks math_train            # hub (online) -> data/<name>/<split>.parquet
    python -m data_prep write all --source-dir /mirror/hf      # local hub snapshots (offline)
    python -m data_prep write arith --arith-train-size 512 --arith-max-ops 3
    python -m data_prep write judge_arith                      # judge-training examples (data_prep/judge_data.py)
    python -m data_prep write math_train math500 judge --source-dir /mirror/hf   # PRM800K, Math-Shepherd, ProcessBench
    python -m data_prep chat-template none --hydra-override    # the override a "none" launch must pass
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data_prep.arith import ArithConfig
from data_prep.pipeline import (
    CONTAMINATION_REPORT,
    DEFAULT_OUTPUT_DIR,
    EmptyOutputError,
    PrepareOptions,
    SourceSchemaError,
    prepare,
)
from data_prep.judge_data import RATIONALES
from data_prep.registry import GROUPS, REGISTRY
from data_prep.schema import BadRowError
from data_prep.source_files import SourceFileError
from data_prep.sources import SourceUnavailableError
from data_prep.staged_output import OutputWriteError
from data_prep.templates import DEFAULT_TEMPLATE, TEMPLATES, get_template, hydra_override

#: Exit status for bad input (bad row, broken or unreadable source, a split left empty, bad option) and for
#: output that cannot be written; the message says what to fix, and nothing was written.
EXIT_BAD_INPUT = 2

#: The errors ``write`` reports as a message (no traceback) with :data:`EXIT_BAD_INPUT`.
REPORTED_ERRORS = (
    BadRowError,
    SourceFileError,
    SourceUnavailableError,
    SourceSchemaError,
    EmptyOutputError,
    OutputWriteError,
    ValueError,
)


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m data_prep", description="Public math datasets -> verl parquet.")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("list", help="list datasets, groups and prompt templates")

    write = commands.add_parser("write", help="prepare datasets and write parquet + manifests")
    write.add_argument("names", nargs="+", help=f"datasets ({', '.join(REGISTRY)}) or groups ({', '.join(GROUPS)})")
    write.add_argument("--out", type=Path, default=DEFAULT_OUTPUT_DIR, help="output root (default: %(default)s)")
    write.add_argument(
        "--template", default=DEFAULT_TEMPLATE, choices=list(TEMPLATES), help="prompt template (default: %(default)s)"
    )
    write.add_argument("--source-dir", type=Path, help="folder of local hub snapshots: <DIR>/<owner>/<name>/")
    write.add_argument(
        "--source",
        type=_key_value,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="local file or folder for one dataset",
    )
    write.add_argument(
        "--revision",
        type=_key_value,
        action="append",
        default=[],
        metavar="NAME=REV",
        help="hub revision for one dataset",
    )
    write.add_argument(
        "--drop-bad-rows", action="store_true", help="drop invalid rows (counted, reported) instead of stopping"
    )
    write.add_argument("--decontaminate", action="store_true", help="remove training rows that are benchmark problems")
    write.add_argument("--max-rows", type=int, help="read at most this many rows per source split (trials)")
    write.add_argument("--cache-dir", help="datasets cache folder")
    write.add_argument("--quiet", action="store_true", help="no progress bars")
    defaults = ArithConfig()
    arith = write.add_argument_group("synthetic arithmetic task (arith)")
    arith.add_argument("--arith-seed", type=int, default=PrepareOptions.arith_seed)
    arith.add_argument("--arith-train-size", type=int, default=PrepareOptions.arith_train_size)
    arith.add_argument("--arith-val-size", type=int, default=PrepareOptions.arith_val_size)
    arith.add_argument("--arith-min-ops", type=int, default=defaults.min_ops)
    arith.add_argument("--arith-max-ops", type=int, default=defaults.max_ops)
    arith.add_argument("--arith-min-operand", type=int, default=defaults.min_operand)
    arith.add_argument("--arith-max-operand", type=int, default=defaults.max_operand)
    arith.add_argument("--arith-max-value", type=int, default=defaults.max_value)
    arith.add_argument("--arith-ops", default="".join(defaults.operations), help="operations, e.g. '+-*' or '+-'")

    judge = write.add_argument_group("judge-training examples (judge_*; data_prep/judge_data.py)")
    judge.add_argument("--judge-prompt", default=PrepareOptions.judge_prompt,
                       help="judge prompt version the examples are rendered with (default: %(default)s)")
    judge.add_argument("--no-judge-balance", action="store_true",
                       help="keep every train example (default: as many correct as erroneous)")
    judge.add_argument("--judge-rationale", choices=RATIONALES, default=PrepareOptions.judge_rationale,
                       help="the answer: the verdict line alone, or after one line per step (default: %(default)s)")
    judge.add_argument("--judge-seed", type=int, default=PrepareOptions.judge_seed)
    judge.add_argument("--judge-arith-train-size", type=int, default=PrepareOptions.judge_arith_train_size)
    judge.add_argument("--judge-arith-test-size", type=int, default=PrepareOptions.judge_arith_test_size)

    chat = commands.add_parser("chat-template", help="print a template's chat template for custom_chat_template")
    chat.add_argument("template", choices=list(TEMPLATES))
    chat.add_argument("--hydra-override", action="store_true", help="print it as a verl hydra override")
    return parser


def _list() -> None:
    print(f"{'name':<15} {'kind':<10} {'data_source':<22} {'solutions':<9} {'source (split)':<50} description")
    for spec in REGISTRY.values():
        source = "generated locally" if spec.generated else f"{spec.hf_id} ({', '.join(s for s, _ in spec.splits)})"
        solutions = "yes" if spec.has_reference_solutions else "no"
        print(f"{spec.name:<15} {spec.kind:<10} {spec.data_source:<22} {solutions:<9} {source:<50} {spec.description}")
    print("\ngroups: " + "; ".join(f"{g} = {' '.join(n)}" for g, n in GROUPS.items()))
    print("\ntemplates:")
    for template in TEMPLATES.values():
        required = " (custom_chat_template required)" if template.chat_template_required else ""
        print(f"  {template.name:<10} {template.intended_for}: {template.description}{required}")


def _write(args: argparse.Namespace) -> None:
    options = PrepareOptions(
        output_dir=args.out,
        template=args.template,
        source_dir=args.source_dir,
        sources={k: Path(v) for k, v in args.source},
        revisions=dict(args.revision),
        drop_bad_rows=args.drop_bad_rows,
        decontaminate=args.decontaminate,
        max_rows=args.max_rows,
        cache_dir=args.cache_dir,
        arith_seed=args.arith_seed,
        arith_train_size=args.arith_train_size,
        arith_val_size=args.arith_val_size,
        arith=ArithConfig(
            min_ops=args.arith_min_ops,
            max_ops=args.arith_max_ops,
            min_operand=args.arith_min_operand,
            max_operand=args.arith_max_operand,
            max_value=args.arith_max_value,
            operations=tuple(args.arith_ops),
        ),
        judge_prompt=args.judge_prompt,
        judge_balance=not args.no_judge_balance,
        judge_rationale=args.judge_rationale,
        judge_seed=args.judge_seed,
        judge_arith_train_size=args.judge_arith_train_size,
        judge_arith_test_size=args.judge_arith_test_size,
        show_progress=not args.quiet,
    )
    result = prepare(args.names, options)
    for item in result.written:
        print(f"wrote {item.path} ({item.rows} rows; manifest {item.manifest.name})")
    if result.contamination is not None:
        _print_contamination(result.contamination, Path(options.output_dir) / CONTAMINATION_REPORT)
    template = get_template(options.template)
    if template.chat_template_required:
        print(f"template {template.name!r}: the launch must pass {hydra_override(template)}")


def _per_benchmark(entry: dict) -> str:
    counts = entry["overlaps_per_benchmark"]
    return f" ({', '.join(f'{k}: {v}' for k, v in counts.items())})" if counts else ""


def _print_contamination(report: dict, path: Path) -> None:
    if not report["benchmarks_checked"]:
        print(
            "contamination: NOT checked - no benchmark in this run or under the output root; "
            "prepare the benchmarks first (python -m data_prep write benchmarks)"
        )
        return
    action = "removed" if report["decontaminated"] else "kept (pass --decontaminate to remove)"
    for name, entry in report["training_sets"].items():
        print(
            f"contamination: {name}: {entry['contaminated_rows']} of {entry['rows_checked']} rows are "
            f"benchmark problems{_per_benchmark(entry)} - {action}"
        )
    print(f"contamination report: {path}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        _list()
    elif args.command == "chat-template":
        template = get_template(args.template)
        if template.chat_template is None:
            print(
                f"template {template.name!r} uses the model's own chat template; nothing to override", file=sys.stderr
            )
            return 0
        print(hydra_override(template) if args.hydra_override else template.chat_template)
    else:
        try:
            _write(args)
        except REPORTED_ERRORS as error:
            hint = "" if not isinstance(error, BadRowError) else "\n(pass --drop-bad-rows to drop and count such rows)"
            print(f"error: {error}{hint}\nnothing was written.", file=sys.stderr)
            return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
