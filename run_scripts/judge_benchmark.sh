#!/usr/bin/env bash
# The judge benchmark (python -m reward.judge.benchmark, ProcessBench's metrics) of one served judge on every
# held-out judge set and on CHAMP; run it for the judge before and after training (docs/judge_training.md):
#   JUDGE_URL=http://<judge>:8000/v1 JUDGE_MODEL=<name> OUT_DIR=outputs/judge_bench/before bash run_scripts/judge_benchmark.sh
#   python -m reward.judge.benchmark_table before=outputs/judge_bench/before after=outputs/judge_bench/after
#   DRY_RUN=1 ... bash run_scripts/judge_benchmark.sh      # print the commands, run nothing
#
# Environment (default in brackets):
#   JUDGE_URL         the judge's OpenAI-compatible endpoint, ending in /v1           [required with openai]
#   JUDGE_MODEL       the name the server serves the judge under                      [required with openai]
#   JUDGE_BACKEND     reward.sgpo.judge.backend: openai, or rule (the arithmetic verifier: a reference row) [openai]
#   OUT_DIR           where per-sample lines (<set>.jsonl) and metrics.jsonl go               [required]
#   DATA_DIR          where `python -m data_prep write judge` wrote                           [data]
#   JUDGE_SETS        held-out sets, <name>/<split>, space-separated
#                     [judge_prm800k/test judge_math_shepherd/test judge_arith/test judge_processbench/gsm8k
#                      judge_processbench/math judge_processbench/olympiadbench judge_processbench/omnimath]
#   CHAMP             1: also CHAMP's 540 annotated solutions (the champ-dataset package)     [1]
#   JUDGE_MAX_TOKENS  most tokens of one judge answer (a verdict-only judge needs ~8; a reasoning judge
#                     thousands)                                                              [512]
#   LIMIT             judge only the first N samples of each set (0: all)                     [0]
#   PYTHON            a Python that imports this repository                                   [python]
#   DRY_RUN           1: print the commands, run nothing                                      [0]
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${PYTHON:=python}"
: "${DATA_DIR:=$REPO_DIR/data}"
: "${JUDGE_SETS:=judge_prm800k/test judge_math_shepherd/test judge_arith/test judge_processbench/gsm8k judge_processbench/math judge_processbench/olympiadbench judge_processbench/omnimath}"
: "${CHAMP:=1}"
: "${JUDGE_MAX_TOKENS:=512}"
: "${LIMIT:=0}"
: "${JUDGE_BACKEND:=openai}"
REQUIRED=(OUT_DIR)
[[ "$JUDGE_BACKEND" == openai ]] && REQUIRED+=(JUDGE_URL JUDGE_MODEL)
for name in "${REQUIRED[@]}"; do
  if [[ -z "${!name:-}" ]]; then
    echo "[judge-benchmark] $name is not set (see the head of $0)" >&2
    exit 2
  fi
done
export PYTHONPATH="$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}"

COMMON=(--set "backend=$JUDGE_BACKEND")
if [[ "$JUDGE_BACKEND" == openai ]]; then
  COMMON+=(--set "openai.base_url=$JUDGE_URL" --set "openai.model=$JUDGE_MODEL"
    --set "openai.max_tokens=$JUDGE_MAX_TOKENS" --set openai.temperature=0.0)
fi
[[ "$LIMIT" != 0 ]] && COMMON+=(--limit "$LIMIT")
COMMANDS=()
LABELS=()
for set_name in $JUDGE_SETS; do
  file="$DATA_DIR/$set_name.parquet"
  if [[ "${DRY_RUN:-0}" != 1 && ! -f "$file" ]]; then
    echo "[judge-benchmark] $file not found: write it with python -m data_prep write ${set_name%%/*}" >&2
    exit 2
  fi
  LABELS+=("${set_name//\//_}")
  COMMANDS+=("$(printf '%q ' "$PYTHON" -m reward.judge.benchmark --dataset judge_file --input "$file" "${COMMON[@]}" \
    --output "$OUT_DIR/${set_name//\//_}.jsonl")")
done
if [[ "$CHAMP" == 1 ]]; then
  LABELS+=(champ)
  COMMANDS+=("$(printf '%q ' "$PYTHON" -m reward.judge.benchmark --dataset champ "${COMMON[@]}" --output "$OUT_DIR/champ.jsonl")")
fi

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  echo "[judge-benchmark] dry run: the commands are" >&2
  printf '%s\n' "${COMMANDS[@]}"
  exit 0
fi
mkdir -p "$OUT_DIR"
: > "$OUT_DIR/metrics.jsonl"
for index in "${!COMMANDS[@]}"; do
  echo "[judge-benchmark] ${LABELS[$index]}" >&2
  # the benchmark prints its metrics as one JSON line, then a readable line; keep the JSON with its set
  eval "${COMMANDS[$index]}" > "$OUT_DIR/${LABELS[$index]}.out"
  grep -m 1 '^{"dataset"' "$OUT_DIR/${LABELS[$index]}.out" \
    | "$PYTHON" -c 'import json,sys; row=json.loads(sys.stdin.read()); row["set"]=sys.argv[1]; print(json.dumps(row))' \
      "${LABELS[$index]}" >> "$OUT_DIR/metrics.jsonl"
done
"$PYTHON" -m reward.judge.benchmark_table "$(basename "$OUT_DIR")=$OUT_DIR"
