"""The README and docs/ stay true: every relative link resolves, every script and module a command block
names exists, and the cheap commands run as written."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def relative_links(doc: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.DOTALL)
    return [t for t in LINK.findall(text) if not re.match(r"(https?:|#|mailto:)", t)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(doc):
    missing = [t for t in relative_links(doc) if not (doc.parent / t.split("#")[0]).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} links to missing files: {missing}"


def test_the_readme_links_every_doc():
    linked = {(ROOT / t).resolve() for t in relative_links(ROOT / "README.md")}
    unlinked = [d.name for d in DOCS[1:] if d.resolve() not in linked]
    assert not unlinked, f"docs not reachable from the README: {unlinked}"


def command_lines(doc: Path) -> list[str]:
    lines = []
    for block in CODE_BLOCK.findall(doc.read_text()):
        lines += [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
    return lines


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_scripts_and_modules_named_in_command_blocks_exist(doc):
    problems = []
    for line in command_lines(doc):
        for script in re.findall(r"\bbash\s+(\S+\.sh)\b", line):
            if not (ROOT / script).exists():
                problems.append(f"{script} (in: {line})")
        for module in re.findall(r"python\S*\s+-m\s+([\w.]+)", line):
            if importlib.util.find_spec(module) is None:
                problems.append(f"module {module} (in: {line})")
        for path in re.findall(r"python\S*\s+((?:tests|run_scripts)/\S+\.py)", line):
            if not (ROOT / path).exists():
                problems.append(f"{path} (in: {line})")
    assert not problems, f"{doc.relative_to(ROOT)} names what does not exist: {problems}"


def test_the_readme_install_check_runs_as_written():
    line = next(line for line in command_lines(ROOT / "README.md") if "preflight --check-install" in line)
    result = subprocess.run([sys.executable, *line.split()[1:]], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "plugin OK" in result.stdout
