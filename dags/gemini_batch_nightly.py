"""Nightly Gemini batch: a one-sentence summary and a category for each Python standard-library module.

Real input that ships with every Python: the module docstrings of the standard library, read from
the source files with ``ast`` (never by importing them). One Gemini Batch API job per run; the task
waits in the triggerer and lands one results row per module under ``output_dir``.

The results are the Airflow Asset ``gemini_module_summaries``: each successful run updates it, and
``gemini_results_report`` runs on each update.

Runs on the connection ``gemini_default``: the local emulator in the demo, real Gemini when the
connection holds a real API key and no ``base_url``.
"""

from __future__ import annotations

import ast
import json
import os
import sysconfig
from pathlib import Path
from typing import Literal

import pendulum
from airflow.sdk import Asset, Param, dag, task
from pydantic import BaseModel, Field

from gemini_batch_provider.operators.batch import GeminiBatchOperator

MODULE_SUMMARIES = Asset("gemini_module_summaries")  # this DAG's results; gemini_results_report runs on it

CATEGORIES = [
    "text processing", "data types", "math and numbers", "files and directories", "data persistence",
    "compression and archives", "file formats", "cryptography", "operating system", "concurrency",
    "networking", "internet protocols", "internet data", "markup", "multimedia", "internationalization",
    "user interfaces", "development tools", "debugging and profiling", "runtime services", "importing",
    "language services", "other",
]
SKIPPED_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


class ModuleSummary(BaseModel):
    """What Gemini answers for each module (structured output)."""

    summary: str = Field(min_length=1, description="The module's purpose in one sentence")
    category: Literal[tuple(CATEGORIES)]  # type: ignore[valid-type]  # one of CATEGORIES


def stdlib_docstrings(limit: int):
    """Yield ``{"module", "docstring"}`` for standard-library modules with a docstring, by module name."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if SKIPPED_DIRS.intersection(parts[:-1]):
            continue
        module = ".".join(parts[:-1] + (() if path.stem == "__init__" else (path.stem,)))
        found.append((module, path))
    count = 0
    for module, path in sorted(found):
        try:
            docstring = ast.get_docstring(ast.parse(path.read_bytes()))
        except (SyntaxError, ValueError):  # a few stdlib files are templates or other Python versions
            continue
        if docstring and docstring.strip():
            yield {"module": module, "docstring": docstring.strip()}
            count += 1
            if count >= limit:
                return


@dag(
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["gemini", "batch"],
    params={
        "model": Param("gemini-2.5-flash", type="string", description="Gemini model to run the batch on"),
        "row_limit": Param(1000, type="integer", minimum=1, maximum=20000, description="At most this many modules"),
        "output_dir": Param(
            os.environ.get("GEMINI_BATCH_OUTPUT_DIR", "/tmp/gemini-batch-results"), type="string",
            description="Folder for this run's input and results files (one subfolder per run)",
        ),
    },
    doc_md=__doc__,
)
def gemini_batch_nightly():
    @task
    def prepare_input(params=None, run_id=None) -> str:
        """Write the docstrings to ``<output_dir>/<run_id>/input.jsonl``; returns the path."""
        path = Path(params["output_dir"]).expanduser() / run_id / "input.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for record in stdlib_docstrings(params["row_limit"]):
                out.write(json.dumps(record) + "\n")
        return str(path)

    GeminiBatchOperator(
        task_id="summarize_modules",
        deferrable=True,  # wait in the triggerer, whatever [operators] default_deferrable says
        input_path=prepare_input(),
        key_field="module",
        prompt_template="Module: {module}\n\n{docstring}",
        system_instruction=(
            "You catalogue the Python standard library. Summarize the module's docstring in one "
            "sentence and give the module one category."
        ),
        generation_config={"temperature": 0.2},
        response_schema=ModuleSummary,  # each row's answer lands validated in its "parsed" field
        outlets=[MODULE_SUMMARIES],  # the asset event carries the summary: output_path, counts, cost
        model="{{ params.model }}",
        output_path="{{ params.output_dir }}/{{ run_id }}/results.jsonl",
        poll_interval=float(os.environ.get("GEMINI_BATCH_POLL_INTERVAL", "30")),
    )


gemini_batch_nightly()
