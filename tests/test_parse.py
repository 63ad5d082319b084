"""Parsing a DAG file stays cheap: importing the operators, the sensor and the trigger, or building
an example DAG, loads no SDK (google.genai), no aiohttp and no google-cloud-storage. Each check runs
in a fresh interpreter, as the dag-processor parses files. (How long an import takes is
measured by ``benchmarks/parse.py``, not here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("google.genai", "aiohttp", "google.cloud.storage")
MODULES = ("gemini_batch_provider.operators.batch", "gemini_batch_provider.operators.submit",
           "gemini_batch_provider.operators.results", "gemini_batch_provider.operators.concurrent",
           "gemini_batch_provider.operators.embed", "gemini_batch_provider.sensors.batch",
           "gemini_batch_provider.triggers.batch")


def _loaded_after(code: str) -> list[str]:
    """Which of ``HEAVY`` a fresh interpreter has loaded once ``code`` ran."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ.copy(),
                         stdin=subprocess.DEVNULL, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_importing_the_operators_and_building_the_example_dags_loads_no_sdk():
    # The nightly DAG gives a generation_config and a response_schema: checked without the SDK when
    # the DAG is parsed, by the SDK's own types when a try starts (core.config).
    dags = sorted(str(path) for path in (REPO / "dags").glob("*.py"))
    code = "\n".join([*(f"import {module}" for module in MODULES), "import runpy",
                      *(f"runpy.run_path({dag!r})" for dag in dags)])
    assert len(dags) == 5 and _loaded_after(code) == []


def test_a_task_loads_the_sdk_when_it_needs_it():
    # The check above would pass if nothing loaded the SDK at all: the hook does, once asked for.
    code = ("from gemini_batch_provider.operators.batch import GeminiBatchOperator\n"
            "task = GeminiBatchOperator(task_id='t', records=[{'text': 'x'}], prompt_template='{text}', "
            "output_path='/tmp/o.jsonl')\n"
            "task.hook")
    assert "google.genai" in _loaded_after(code)
