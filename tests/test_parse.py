"""Parsing a DAG file stays cheap: importing the operators, the sensor and the trigger, or building
an example DAG, loads no SDK (google.genai), no aiohttp and no google-cloud-storage. Each check runs
in a fresh interpreter, as the dag-processor parses files. (How long an import takes is measured
by ``benchmarks/parse.py``, not here.)"""

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
#: The example DAG that imports nothing of this provider: what Airflow itself loads to build a DAG.
AIRFLOW_ONLY_DAG = REPO / "dags" / "gemini_results_report.py"


def _loaded(code: str) -> dict[str, list[str]]:
    """Run ``code`` in a fresh interpreter; it calls ``mark(label)`` to record which of ``HEAVY``
    are loaded at that point. The marks, by label."""
    probe = (f"import json, sys\nmarks = {{}}\ndef mark(label):\n"
             f"    marks[label] = [m for m in {HEAVY!r} if m in sys.modules]\n{code}\nprint(json.dumps(marks))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ.copy(),
                         stdin=subprocess.DEVNULL, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_importing_the_operators_and_building_the_example_dags_loads_no_sdk():
    dags = sorted(str(path) for path in (REPO / "dags").glob("*.py") if path != AIRFLOW_ONLY_DAG)
    code = "\n".join([
        *(f"import {module}" for module in MODULES), "mark('modules')",
        # Airflow 3.0 loads aiohttp itself to build any DAG (its execution API's svcs): the DAG of
        # no provider shows what Airflow loads, and the provider's DAGs must load nothing more.
        "import runpy", f"runpy.run_path({str(AIRFLOW_ONLY_DAG)!r})", "mark('airflow')",
        *(f"runpy.run_path({dag!r})" for dag in dags), "mark('dags')",
    ])
    marks = _loaded(code)
    assert len(dags) == 4 and marks["modules"] == []
    assert set(marks["dags"]) - set(marks["airflow"]) == set()
    # The nightly DAG gives a generation_config and a response_schema: checked without the SDK when
    # the DAG is parsed, by the SDK's own types when a try starts (core.config).
    assert "google.genai" not in marks["dags"]


def test_a_task_loads_the_sdk_when_it_needs_it():
    # The check above would pass if nothing loaded the SDK at all: the hook does, once asked for.
    code = ("from gemini_batch_provider.operators.batch import GeminiBatchOperator\n"
            "task = GeminiBatchOperator(task_id='t', records=[{'text': 'x'}], prompt_template='{text}', "
            "output_path='/tmp/o.jsonl')\n"
            "mark('built')\n"
            "task.hook\n"
            "mark('hook')")
    marks = _loaded(code)
    assert "google.genai" not in marks["built"] and "google.genai" in marks["hook"]
