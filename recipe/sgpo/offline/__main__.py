"""``python -m recipe.sgpo.offline {generate,judge,check}``: offline SGPO's three steps before training.

Hydra overrides of the training config go after ``--``; every setting is read from that config
(sgpo_trainer.yaml), so a set is generated, judged and trained with the very values an online run uses::

    python -m recipe.sgpo.offline generate --data data/boxed/math_train/train.parquet --out sets/math \\
        -- actor_rollout_ref.model.path=<model> actor_rollout_ref.rollout.n=8 data.max_response_length=3072
    python -m recipe.sgpo.offline judge --set sets/math -- reward.sgpo.judge.openai.base_url=http://<judge>/v1
    python -m recipe.sgpo.offline check --set sets/math -- actor_rollout_ref.model.path=<model> actor_rollout_ref.rollout.n=8
    python -m verl.trainer.main_ppo --config-path=<recipe/sgpo/config> --config-name=sgpo_trainer \\
        data.train_files=[sets/math/train.parquet] sgpo_offline.set_dir=sets/math <same overrides>

Exit status: 0 done, 2 bad input (the message names it and the fix; nothing written), 1 a failed launch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, overrides = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(prog="python -m recipe.sgpo.offline", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="n responses per prompt through verl's rollout (resumable)")
    generate.add_argument("--data", type=Path, required=True, help="a data_prep training parquet")
    generate.add_argument("--out", type=Path, required=True, help="the set's folder (resumes when it exists)")
    generate.add_argument("--platform", choices=["gpu", "cpu"], default="gpu",
                          help="gpu: vLLM servers; cpu: the transformers rollout (+platform=cpu)")
    generate.add_argument("--max-launches", type=int, default=3,
                          help="trainer launches before giving up on rows that still lack a complete group")
    generate.add_argument("--dry-run", action="store_true", help="check the inputs, print the first launch's command")
    judge = commands.add_parser("judge", help="grade every response, judge as reward.sgpo.* says (resumable)")
    judge.add_argument("--set", type=Path, required=True, dest="set_dir", help="a generated set's folder")
    judge.add_argument("--concurrency", type=int, default=None, help="groups graded and judged at once")
    judge.add_argument("--no-progress", action="store_true", help="no progress bar")
    judge.add_argument("--dry-run", action="store_true", help="check the settings, print the judge protocol, judge nothing")
    check = commands.add_parser("check", help="what a training launch on the set would refuse")
    check.add_argument("--set", type=Path, required=True, dest="set_dir", help="a judged set's folder")
    return parser.parse_args(argv), overrides


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = parse_args(argv)
    for flag in ("max_launches", "concurrency"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            print(f"[sgpo-offline] error: --{flag.replace('_', '-')} must be at least 1 (got {value})", file=sys.stderr)
            return 2
    try:
        if args.command == "generate":
            from recipe.sgpo.offline.generate import generate

            result = generate(args.out, args.data, args.platform, overrides, max_launches=args.max_launches,
                              dry_run=args.dry_run)
            if args.dry_run:
                print(" ".join(result))
            else:
                print(f"[sgpo-offline] {args.out}: {result['rows']} prompts x n={result['n']} responses stored; "
                      f"next: python -m recipe.sgpo.offline judge --set {args.out}")
        elif args.command == "judge" and args.dry_run:
            from recipe.sgpo.offline.judge import judge_protocol, settings_from_overrides

            print(json.dumps(judge_protocol(settings_from_overrides(overrides)), sort_keys=True))
            print(f"[sgpo-offline] DRY_RUN: would grade and judge {args.set_dir}")
        elif args.command == "judge":
            from recipe.sgpo.offline.judge import DEFAULT_GROUP_CONCURRENCY, judge_set

            stats = judge_set(args.set_dir, overrides, concurrency=args.concurrency or DEFAULT_GROUP_CONCURRENCY,
                              progress=not args.no_progress)
            shown = {k: v for k, v in stats.items() if k != "protocol"}
            print(json.dumps(shown, sort_keys=True))
            print(f"[sgpo-offline] {args.set_dir}: {stats['groups']} groups, accuracy {stats['accuracy']:.3f}, all-negative "
                  f"groups {stats['all_negative_group_share']:.3f}, judged {stats['judged']} of {stats['judge_called']} "
                  f"calls ({stats['judge_failed']} failed); train with data.train_files=[{args.set_dir / 'train.parquet'}] "
                  f"sgpo_offline.set_dir={args.set_dir}")
        else:
            return check(args.set_dir, overrides)
    except (ValueError, HydraException, OmegaConfBaseException) as error:  # OfflineSetError and bad settings
        print(f"[sgpo-offline] error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"[sgpo-offline] failed: {error}", file=sys.stderr)
        return 1
    return 0


def check(set_dir: Path, overrides: Sequence[str]) -> int:
    from recipe.sgpo.offline.store import TRAIN_NAME
    from recipe.sgpo.preflight import compose_config, run_checks

    set_dir = set_dir.resolve()
    config = compose_config([*overrides, f"sgpo_offline.set_dir={set_dir}", f"data.train_files=[{set_dir / TRAIN_NAME}]"])
    report = run_checks(config)
    print(report.render(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 2


if __name__ == "__main__":
    sys.exit(main())
