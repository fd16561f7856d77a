"""Generate n responses per training prompt once, through verl's own rollout, resumably.

Every setting comes from the training config (``sgpo_trainer.yaml`` plus the hydra overrides given), so a set
is sampled exactly as an online run of that config would sample its rollouts:

=================================  =====================================================================
stored as                          read from
=================================  =====================================================================
model, tokenizer                   ``actor_rollout_ref.model.path``
n (group size)                     ``actor_rollout_ref.rollout.n``
temperature / top_p / top_k        ``actor_rollout_ref.rollout.{temperature,top_p,top_k}``
seed                               ``actor_rollout_ref.rollout.seed``
prompt / response token limits     ``data.max_prompt_length`` / ``data.max_response_length``
=================================  =====================================================================

Each launch is ``python -m verl.trainer.main_ppo`` with ``trainer.val_only=True``: verl's validation
generates ``val_kwargs.n`` (= n) samples per row with the training sampling settings, through vLLM servers
on GPUs or the transformers rollout with ``--platform cpu`` (the same code path), and the ``sgpo_record``
agent loop appends each member's prompt ids, response ids and sampling log-probs to the launch's folder.
A re-run generates only the rows without a complete group, and the set is complete when every row has n
members. Prompts longer than ``data.max_prompt_length`` are left out up front and listed in the manifest
(verl's ``data.filter_overlong_prompts`` would drop them the same way in online training).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_prep.sources import sha256_of
from recipe.sgpo.offline import store
from recipe.sgpo.offline.store import OfflineSetError
from reward.settings_base import config_get

#: Overlong rows named in the manifest's summary line.
ROWS_SHOWN = 5
#: Seconds between two looks at a running launch's records (the progress bar).
PROGRESS_POLL_S = 2.0


@dataclass(frozen=True)
class GenerationSettings:
    """What determines a set's responses (all read from the composed training config)."""

    model: str
    n: int
    temperature: float
    top_p: float
    top_k: int
    seed: int
    max_prompt_length: int
    max_response_length: int

    @classmethod
    def from_config(cls, config: Any) -> "GenerationSettings":
        rollout = ("actor_rollout_ref", "rollout")
        return cls(
            model=str(config_get(config, "actor_rollout_ref", "model", "path")),
            n=int(config_get(config, *rollout, "n")),
            temperature=float(config_get(config, *rollout, "temperature")),
            top_p=float(config_get(config, *rollout, "top_p")),
            top_k=int(config_get(config, *rollout, "top_k")),
            seed=int(config_get(config, *rollout, "seed")),
            max_prompt_length=int(config_get(config, "data", "max_prompt_length")),
            max_response_length=int(config_get(config, "data", "max_response_length")),
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def platform_overrides(platform: str) -> list[str]:
    """Overrides that select the platform; they come before the user's."""
    if platform == "cpu":
        return ["+platform=cpu"]
    if platform == "gpu":
        return ["actor_rollout_ref.rollout.name=vllm"]
    raise OfflineSetError(f"--platform {platform!r}: expected gpu or cpu")


def compose(platform: str, overrides: Sequence[str]) -> Any:
    from recipe.sgpo.preflight import compose_config

    return compose_config([*platform_overrides(platform), *overrides])


def check_source(path: Path) -> Path:
    """A data_prep training parquet (our row schema); anything else is refused with the fix."""
    from recipe.sgpo.eval.run import check_row_file

    return check_row_file(path, "--data", "write training data with `python -m data_prep write <dataset> --out data/<root>`",
                          OfflineSetError)


def build_manifest(source: Path, settings: GenerationSettings, tokenizer: Any, rows: int,
                   overlong: list[int], platform: str) -> dict[str, Any]:
    from recipe.sgpo.eval.run import package_versions

    return {
        "format_version": store.FORMAT_VERSION,
        "source": {"file": str(source), "sha256": sha256_of(source)},
        **settings.as_dict(),
        "tokenizer_fingerprint": store.tokenizer_fingerprint(tokenizer),
        "platform": platform,
        "rows": rows,
        "overlong_rows": overlong,
        "versions": package_versions(),
    }


#: Manifest keys that are outputs or informational: a resumed generation may differ in them.
UNCHECKED_MANIFEST_KEYS = ("lengths", "versions", "complete", "has_logprobs")


def prepare(set_dir: Path, source: Path, settings: GenerationSettings, platform: str) -> dict[str, Any]:
    """Write (or check, when resuming) manifest.json and prompts.parquet; returns the manifest."""
    from transformers import AutoTokenizer

    from recipe.sgpo.eval.run import chat_prompt_token_counts, differing_keys

    tokenizer = AutoTokenizer.from_pretrained(settings.model)
    table = pq.read_table(source)
    counts = chat_prompt_token_counts(tokenizer, table.column("prompt").to_pylist())
    overlong = [row for row, count in enumerate(counts) if count > settings.max_prompt_length]
    manifest = build_manifest(source, settings, tokenizer, table.num_rows - len(overlong), overlong, platform)
    manifest_path = set_dir / store.MANIFEST_NAME
    if manifest_path.is_file():
        previous = json.loads(manifest_path.read_text())
        changed = differing_keys(previous, manifest, UNCHECKED_MANIFEST_KEYS)
        if changed:
            raise OfflineSetError(f"{manifest_path}: this set was generated with other settings (differs in {changed}); "
                                  "give a new --out, or delete the folder to start over")
        return previous
    if not manifest["rows"]:
        raise OfflineSetError(f"--data {source}: all {table.num_rows} prompts are longer than data.max_prompt_length="
                              f"{settings.max_prompt_length}; raise it")
    left_out = set(overlong)
    keep = [row for row in range(table.num_rows) if row not in left_out]
    kept = table.take(pa.array(keep, pa.int64()))
    kept = kept.append_column(store.ROW_COLUMN, pa.array(range(kept.num_rows), pa.int64()))
    kept = kept.append_column(store.AGENT_COLUMN, pa.array([store.RECORD_AGENT] * kept.num_rows, pa.string()))
    set_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(kept, set_dir / store.PROMPTS_NAME)
    store.write_json(manifest_path, manifest)
    return manifest


#: The start of every record line (json.dumps keeps the agent loop's key order): row and member, read without
#: parsing the token ids, so finding complete groups costs no memory for them.
RECORD_KEY = re.compile(rb'^\{"' + store.ROW_COLUMN.encode() + rb'": (\d+), "member": (\d+),')
#: Members per record batch written to responses.arrow (bounds the memory of finishing a large set).
WRITE_BATCH_MEMBERS = 1024


def _launches(set_dir: Path) -> list[Path]:
    generation = set_dir / store.GENERATION_DIR
    if not generation.is_dir():
        return []
    return sorted(generation.glob("launch-*"), key=lambda p: int(p.name.split("-")[1]))


def _record_lines(launch: Path):
    """(row, member, line) of every complete record line of a launch; a torn line (a process killed
    mid-write) is skipped."""
    for path in sorted(launch.glob("records-*.jsonl")):
        with path.open("rb") as handle:
            for line in handle:
                match = RECORD_KEY.match(line)
                if match and line.endswith(b"\n"):
                    yield int(match.group(1)), int(match.group(2)), line


def complete_groups(set_dir: Path, n: int) -> dict[int, int]:
    """offline_row → the launch (index in launch order) that recorded its complete group.

    Launches are read in order and the first complete group of a row wins, so members of a group always
    come from one launch (a group interrupted half-way is generated again, whole).
    """
    chosen: dict[int, int] = {}
    for index, launch in enumerate(_launches(set_dir)):
        members: dict[int, set[int]] = {}
        for row, member, _ in _record_lines(launch):
            members.setdefault(row, set()).add(member)
        for row, seen in members.items():
            if row not in chosen and seen == set(range(n)):
                chosen[row] = index
    return chosen


def read_records(set_dir: Path, n: int, rows: set[int] | None = None):
    """The members of complete groups, parsed, in launch and file order: one dict per (row, member)
    (of ``rows`` only, when given). A generator: only the records being used are in memory."""
    chosen = complete_groups(set_dir, n)
    emitted: set[tuple[int, int]] = set()
    for index, launch in enumerate(_launches(set_dir)):
        for row, member, line in _record_lines(launch):
            if chosen.get(row) == index and (rows is None or row in rows) and (row, member) not in emitted:
                emitted.add((row, member))
                yield json.loads(line)


def pending_rows(set_dir: Path, manifest: dict[str, Any]) -> list[int]:
    done = complete_groups(set_dir, int(manifest["n"]))
    return [row for row in range(int(manifest["rows"])) if row not in done]


def launch_overrides(platform: str, overrides: Sequence[str], settings: GenerationSettings, prompts: Path,
                     record_dir: Path) -> list[str]:
    """One generation launch: verl's validation of ``prompts`` with the training sampling, recorded."""
    return [
        *platform_overrides(platform),
        *overrides,
        # verl builds a training dataloader even for val_only; the same rows serve (never trained on).
        f"data.train_files={prompts}",
        f"data.val_files={prompts}",
        # overlong prompts were left out (and listed) already; one left would be a bug, not a drop
        "data.filter_overlong_prompts=False",
        f"actor_rollout_ref.rollout.val_kwargs.n={settings.n}",
        "actor_rollout_ref.rollout.val_kwargs.do_sample=True",
        f"actor_rollout_ref.rollout.val_kwargs.temperature={settings.temperature}",
        f"actor_rollout_ref.rollout.val_kwargs.top_p={settings.top_p}",
        f"actor_rollout_ref.rollout.val_kwargs.top_k={settings.top_k}",
        # the sampling log-probs, for verl's rollout correction at training time
        "actor_rollout_ref.rollout.calculate_log_probs=True",
        "trainer.val_only=True",
        "trainer.val_before_train=True",
        "trainer.resume_mode=disable",
        "trainer.logger=[console]",
        "reward.sgpo.judge_scope=off",  # validation is graded, never judged; judging is the judge command's
        f"sgpo_offline.record_dir={record_dir}",
    ]


def run_launch(set_dir: Path, platform: str, overrides: Sequence[str], settings: GenerationSettings,
               rows: list[int]) -> Path:
    """Generate ``rows`` in one val-only trainer launch; returns the launch folder."""
    from recipe.sgpo.eval.run import platform_env, trainer_command

    generation = set_dir / store.GENERATION_DIR
    generation.mkdir(exist_ok=True)
    launch = generation / f"launch-{len(list(generation.glob('launch-*')))}"
    launch.mkdir()
    prompts = pq.read_table(set_dir / store.PROMPTS_NAME)
    chunk = prompts.filter(pc.is_in(prompts.column(store.ROW_COLUMN), pa.array(rows, pa.int64())))
    chunk_path = launch / store.PROMPTS_NAME
    pq.write_table(chunk, chunk_path)
    command = trainer_command(launch_overrides(platform, overrides, settings, chunk_path, launch))
    (launch / "command.json").write_text(json.dumps(command, indent=1))
    with (launch / "trainer.log").open("w") as log:
        process = subprocess.Popen(command, cwd=str(Path(__file__).resolve().parents[3]), env=platform_env(platform),
                                   stdout=log, stderr=subprocess.STDOUT)
        status = _wait_with_progress(process, RecordCounter(launch), total=len(rows) * settings.n)
    if status != 0:
        raise RuntimeError(f"generation launch failed (exit {status}); log: {launch / 'trainer.log'}. "
                           "Run the same command again to go on from the complete groups")
    return launch


class RecordCounter:
    """Members recorded so far in a launch folder, reading only the bytes appended since the last call."""

    def __init__(self, launch: Path) -> None:
        self.launch = launch
        self._offsets: dict[Path, int] = {}
        self.count = 0

    def update(self) -> int:
        for path in self.launch.glob("records-*.jsonl"):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as handle:
                handle.seek(offset)
                new = handle.read()
            self.count += new.count(b"\n")
            self._offsets[path] = offset + len(new)
        return self.count


def _wait_with_progress(process: subprocess.Popen, counter: RecordCounter, total: int) -> int:
    """Wait for the launch, with a bar of the members recorded (Ray start-up shows as 0 for a minute or more)."""
    import time

    from tqdm import tqdm

    with tqdm(total=total, desc="responses generated", unit="response", disable=None) as bar:
        while process.poll() is None:
            time.sleep(PROGRESS_POLL_S)
            bar.update(counter.update() - bar.n)
        bar.update(counter.update() - bar.n)
    return process.returncode


def finish(set_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write responses.arrow from the complete groups (in batches) and the stored lengths into the manifest."""
    n = int(manifest["n"])
    prompt_max = response_max = response_total = members = 0
    all_logprobs = True
    with store.arrow_writer(set_dir / store.RESPONSES_NAME, store.RESPONSES_SCHEMA) as writer:
        batch: list[dict[str, Any]] = []
        for record in read_records(set_dir, n):
            prompt_max = max(prompt_max, len(record["prompt_ids"]))
            response_max = max(response_max, len(record["response_ids"]))
            response_total += len(record["response_ids"])
            all_logprobs = all_logprobs and record["response_logprobs"] is not None
            members += 1
            batch.append(record)
            if len(batch) == WRITE_BATCH_MEMBERS:
                writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=store.RESPONSES_SCHEMA))
                batch = []
        if batch:
            writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=store.RESPONSES_SCHEMA))
    manifest = dict(manifest)
    manifest["lengths"] = {"max_prompt_ids": prompt_max, "max_response_ids": response_max,
                           "mean_response_ids": response_total / max(members, 1)}
    manifest["has_logprobs"] = all_logprobs
    manifest["complete"] = True
    store.write_json(set_dir / store.MANIFEST_NAME, manifest)
    return manifest


def generate(set_dir: Path, source: Path, platform: str, overrides: Sequence[str], max_launches: int = 3,
             dry_run: bool = False) -> dict[str, Any] | list[str]:
    """Generate until every row has n members (at most ``max_launches`` launches); returns the manifest.

    With ``dry_run``, checks every input and returns the first launch's command without running it.
    """
    from recipe.sgpo.eval.run import trainer_command

    set_dir = Path(set_dir).resolve()
    if not dry_run or Path(source).exists():
        source = check_source(source)  # before composing the config: a bad file fails in a second
    else:
        print(f"[sgpo-offline] note: --data {source} does not exist yet (checked at the real run)")
    settings = GenerationSettings.from_config(compose(platform, overrides))
    if dry_run:
        return trainer_command(launch_overrides(platform, overrides, settings, set_dir / store.PROMPTS_NAME,
                                                set_dir / store.GENERATION_DIR / "launch-0"))
    manifest = prepare(set_dir, source, settings, platform)
    if manifest["overlong_rows"]:
        shown = ", ".join(map(str, manifest["overlong_rows"][:ROWS_SHOWN]))
        print(f"[sgpo-offline] {len(manifest['overlong_rows'])} prompts longer than data.max_prompt_length="
              f"{settings.max_prompt_length} left out (source rows {shown}...; all in manifest.json overlong_rows)")
    for _ in range(max_launches):
        rows = pending_rows(set_dir, manifest)
        if not rows:
            break
        print(f"[sgpo-offline] generating {len(rows)} of {manifest['rows']} prompts x n={settings.n} ...", flush=True)
        launch = run_launch(set_dir, platform, overrides, settings, rows)
        print(f"[sgpo-offline] launch {launch.name} done", flush=True)
    missing = pending_rows(set_dir, manifest)
    if missing:
        raise RuntimeError(f"{len(missing)} prompts still lack a complete group after {max_launches} launches "
                           f"(first: offline_row {missing[:ROWS_SHOWN]}); see {set_dir / store.GENERATION_DIR}/*/trainer.log")
    return finish(set_dir, manifest)
