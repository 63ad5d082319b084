"""The documentation under ``docs/``: it builds with warnings as errors, and every code example in
it is included from a file that a test runs, so that none can drift from what the provider does."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
# Where an included example may live: the how-to DAGs that tests/system/test_examples.py runs, and
# the example DAGs that tests/examples and tests/e2e run.
RUN_BY_TESTS = {*(ROOT / "tests" / "system").glob("example_*.py"), *(ROOT / "dags").glob("*.py")}
INCLUDE = re.compile(r"```\{literalinclude\} (?P<path>\S+)\n(?P<options>(?::[^\n]*\n)*)```")


def includes() -> list[tuple[Path, Path, str]]:
    """Every ``literalinclude`` of the docs: (page, included file, marker)."""
    found = []
    for page in PAGES:
        for match in INCLUDE.finditer(page.read_text()):
            marker = re.search(r':start-after: "\[START (\S+)\]"', match["options"])
            found.append((page, (page.parent / match["path"]).resolve(), marker[1] if marker else ""))
    return found


def snippet(path: Path, marker: str) -> str:
    """What the docs show of ``path`` between the marker's START and END lines, dedented."""
    text = path.read_text()
    start = text.index(f"[START {marker}]")
    body = text[text.index("\n", start) + 1:text.index(f"[END {marker}]")]
    return textwrap.dedent(body[:body.rindex("\n") + 1])


def test_the_docs_build_with_warnings_as_errors(tmp_path):
    pytest.importorskip("sphinx", reason="the docs extra (scripts/setup.sh installs it)")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS),
                           str(tmp_path / "html")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-5000:]
    api = (tmp_path / "html" / "api.html").read_text()
    for name in ("operators.batch.GeminiBatchOperator", "sensors.batch.GeminiBatchJobSensor",
                 "triggers.batch.GeminiBatchJobTrigger", "hooks.gemini.GeminiHook", "results.read_results"):
        assert f'id="gemini_batch_provider.{name}"' in api  # the reference is built from the docstrings


def test_every_code_example_is_included_from_a_file_a_test_runs():
    found = includes()
    assert len(found) >= 12
    for page, path, marker in found:
        assert path in RUN_BY_TESTS, f"{page.name} includes {path}, which no test runs"
        assert marker and snippet(path, marker).strip(), f"{page.name}: no [START {marker}] ... [END] in {path.name}"
    for page in PAGES:  # and no Python is written into a page, where nothing would run it
        assert "```python" not in page.read_text(), f"{page.name} has a Python block; include it from an example"


def test_every_how_to_example_is_shown_in_the_docs():
    shown = {(path, marker) for _, path, marker in includes()}
    written = {(path, marker) for path in RUN_BY_TESTS if path.parent.name == "system"
               for marker in re.findall(r"# \[START (\w+)\]", path.read_text())}
    assert written and written <= shown


def test_the_readme_example_is_the_batch_how_to_as_it_runs():
    readme = (ROOT / "README.md").read_text()
    [block] = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert block == snippet(ROOT / "tests" / "system" / "example_gemini_batch.py", "howto_operator_gemini_batch")
