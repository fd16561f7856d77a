"""The suite's own parallel run (tests/run_tests.sh: two pytest-xdist workers handed whole units of work by
the scheduler in tests/conftest.py). A real ``pytest -n 2`` session on generated test files, with that
scheduler, must build every module fixture once and run the files of ``SHARED_FIXTURE_GROUPS`` on one
worker, so the shared main-job run is launched once. (pytest-xdist's own ``--dist loadgroup`` silently
stopped grouping on pytest 9.2: every fixture was built on both workers and the suite took 21 min instead of 16.)
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from conftest import SHARED_FIXTURE_GROUPS

TESTS_DIR = Path(__file__).resolve().parent

#: The generated session's conftest: the suite's scheduler and ordering hooks, and a session fixture.
CONFTEST = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("sgpo_suite_conftest", {str(TESTS_DIR / "conftest.py")!r})
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)
pytest_xdist_make_scheduler = suite.pytest_xdist_make_scheduler
pytest_collection_modifyitems = suite.pytest_collection_modifyitems

import os, pytest

def log(what):
    with open(os.environ["BUILD_LOG"], "a") as handle:
        handle.write(f"{{what}} {{os.getpid()}}\\n")

@pytest.fixture(scope="session")
def shared_run():  # as tests/conftest.py's tiny_main_job: one per worker
    log("session")
"""

#: A test file whose module fixture (and the conftest's session fixture) write down the process that built them.
TEST_FILE = """
import time, pytest
from conftest import log

@pytest.fixture(scope="module")
def module_input():
    log("{name}")
    time.sleep(0.5)

@pytest.mark.parametrize("case", range(12))
def test_with_fixtures(shared_run, module_input, case):
    time.sleep(0.05)

def test_without_fixtures():
    pass
"""


def test_two_workers_build_each_module_fixture_once_and_keep_shared_groups_together(tmp_path):
    shared = sorted(SHARED_FIXTURE_GROUPS)
    assert len(shared) >= 2 and len(set(SHARED_FIXTURE_GROUPS.values())) == 1
    names = [*shared, "test_alone_a.py", "test_alone_b.py", "test_alone_c.py"]
    (tmp_path / "conftest.py").write_text(CONFTEST)
    for name in names:
        (tmp_path / name).write_text(TEST_FILE.format(name=name))
    log = tmp_path / "builds.txt"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", str(tmp_path)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "BUILD_LOG": str(log)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{13 * len(names)} passed" in result.stdout
    builds = [line.split() for line in log.read_text().splitlines()]
    module_builds = Counter(what for what, _ in builds if what != "session")
    assert module_builds == Counter(names), "a module fixture was built on more than one worker"
    worker_of = {what: pid for what, pid in builds}
    assert len({worker_of[name] for name in shared}) == 1, "the shared group was split across workers"
    assert len({pid for _, pid in builds}) == 2, "the run did not use both workers: the test proves nothing"
    sessions_on_shared_worker = [pid for what, pid in builds if what == "session" and pid == worker_of[shared[0]]]
    assert len(sessions_on_shared_worker) == 1  # the shared session fixture: once for the whole group
