"""The fault matrix, short: every fault the emulator plays, on both paths, with a quarter of the rows
answered by an earlier run (reused); nothing lost, nothing paid twice."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration

# What each fault must end in: the task's outcome, and words of what the user is told (a regular
# expression when the figures vary).
EXPECTED = {
    "429 storm": ("success", "'succeeded': 40"),
    "5xx": ("success", "'succeeded': 40"),
    "connection resets": ("success", "'succeeded': 40"),
    "slow responses past the timeout": ("success", "'succeeded': 40"),
    "outage": ("failed", "did not answer 30 of 30 rows"),  # the 10 reused rows were never sent
    "job FAILED": ("failed", "JOB_STATE_FAILED"),
    "job EXPIRED": ("failed", "JOB_STATE_EXPIRED"),
    "job CANCELLED": ("failed", "'cancelled': 30"),
    "job stuck past the deadline": ("success", "path batch+online"),
    "per-row errors UNAVAILABLE": ("success", "'succeeded': 40"),
    "per-row errors INVALID_ARGUMENT": ("success", r"'succeeded': (?!40)\d+, 'failed': [1-9]"),  # some rows, not none
    "malformed result file (": ("failed", "Set rerun_failed_online=True"),
    "malformed result file, re-run online": ("success", "'succeeded': 40"),
    "truncated result file": ("failed", "have no readable answer"),
    "429 on create": ("success", "'succeeded': 40"),
    "emulator restart mid-job (deferred)": ("success", "'succeeded': 40"),
    "emulator restart mid-job (polling": ("success", "'succeeded': 40"),
}


def test_the_short_fault_matrix_loses_no_row_and_creates_no_second_job():
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "faults.py"), "--short"], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]  # JSON alone: logs go to stderr
    assert len(lines) == len(EXPECTED)
    for line in lines:
        [(outcome, words)] = [v for k, v in EXPECTED.items() if line["fault"].startswith(k)]
        assert (line["rows_lost"], line["rows_duplicated"], line["duplicate_jobs"]) == (0, 0, 0), line
        assert line["rows_out"] == line["rows_in"] == 40 and line["rows_reused"] == 10, line
        assert line["outcome"] == outcome, line
        assert words in line["message"] or re.search(words, line["message"]), line
    storm = next(line for line in lines if line["fault"].startswith("429 storm"))
    assert storm["responses_429"] > 0  # the storm happened, and was ridden out
