"""The judge-server venv set-up (run_scripts/setup_judge_server_env.sh) as the test workers call it.

Two test files start a server (test_judge_server_on_cpu.py, test_judge_prm_on_cpu.py); under two workers on a
fresh machine both can run the set-up at once on one folder and break each other's pip installs (the likely
cause of CI's exit 2 with no message, 2026-12-07; not reproduced there). These tests run the real script against a venv folder of their own, so they
never touch (or rebuild) the shared one.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reward.judge.cpu_server import SETUP_SCRIPT, ensure_server_venv

#: How long a set-up must stay blocked behind a held lock. A ready venv is reported in well under this time
#: when nothing holds the lock (the script only hashes itself and checks two files).
BLOCKED_FOR_S = 2.0


def ready_venv(folder: Path) -> Path:
    """A folder the set-up takes as an already built venv: an executable ``bin/python`` and the stamp the script
    writes last (its own sha256), so the script reports it without installing anything."""
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").symlink_to(sys.executable)
    digest = subprocess.run(["sha256sum", str(SETUP_SCRIPT)], check=True, capture_output=True, text=True)
    (folder / ".sgpo-judge-server").write_text(digest.stdout.split()[0] + "\n")
    return folder


def test_a_second_set_up_waits_for_the_first_and_then_reuses_its_venv(tmp_path):
    venv = ready_venv(tmp_path / "judge-server")
    env = {**os.environ, "SERVER_VENV": str(venv)}
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a set-up still building would hold it
        waiting = subprocess.Popen(["bash", str(SETUP_SCRIPT)], env=env, stdout=subprocess.PIPE, text=True)
        time.sleep(BLOCKED_FOR_S)
        still_waiting = waiting.poll() is None
        fcntl.flock(lock, fcntl.LOCK_UN)
    stdout, _ = waiting.communicate(timeout=60)
    assert still_waiting, "the set-up went ahead while another one held the lock"
    assert waiting.returncode == 0
    assert stdout.strip().splitlines()[-1] == str(venv)


def test_a_failed_set_up_raises_with_its_own_message(tmp_path, monkeypatch):
    missing_python = tmp_path / "no-such-python3.11"
    monkeypatch.setenv("SERVER_VENV", str(tmp_path / "judge-server"))
    monkeypatch.setenv("PYTHON", str(missing_python))  # a real fault: the interpreter to build the venv is absent
    with pytest.raises(RuntimeError) as failure:
        ensure_server_venv()
    message = str(failure.value)
    assert str(SETUP_SCRIPT) in message and "exited with 127" in message
    assert str(missing_python) in message  # bash's own "No such file or directory" line, passed on
