"""Gemini batch on Vertex AI: a one-line summary of each Python built-in, staged in Cloud Storage.

Real input that ships with every Python: the docstrings of the ``builtins`` module's functions,
classes and exceptions. The same GeminiBatchOperator as the nightly DAG, on a Vertex AI connection
(``gemini_vertex``): the input is split into jobs of 50 rows, staged under
``gcs_staging_uri``, run as Vertex AI batch prediction jobs, and each ``predictions.jsonl`` is
streamed back and joined by key into one results row per built-in.

Runs as shipped against the local emulators (the Gemini emulator and a Cloud Storage emulator,
reached through ``STORAGE_EMULATOR_HOST``). For real Vertex AI, give ``gemini_vertex`` the extras
``{"vertexai": true, "project": "<project>", "location": "us-central1"}`` and a service-account key
(or none, for the machine's default credentials), and a bucket of yours in ``gcs_staging_uri``.
"""

from __future__ import annotations

import builtins
import json
import os
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, task

from gemini_batch_provider.operators.batch import GeminiBatchOperator


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["gemini", "batch", "vertex"],
    params={
        "model": Param("gemini-3-flash-preview", type="string", description="Gemini model to run the batch on"),
        "gcs_staging_uri": Param(
            os.environ.get("GEMINI_VERTEX_STAGING_URI", "gs://gemini-batch-staging/airflow"), type="string",
            pattern="^gs://", description="Cloud Storage folder for the staged input and the predictions",
        ),
        "output_dir": Param(
            os.environ.get("GEMINI_BATCH_OUTPUT_DIR", "/tmp/gemini-batch-results"), type="string",
            description="Folder for this run's input and results files (one subfolder per run)",
        ),
    },
    doc_md=__doc__,
)
def gemini_vertex_batch():
    @task
    def prepare_input(params=None, run_id=None) -> str:
        """Write the built-ins' docstrings to ``<output_dir>/<run_id>/builtins.jsonl``; returns the path."""
        path = Path(params["output_dir"]).expanduser() / run_id / "builtins.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for name in sorted(vars(builtins)):
                doc = getattr(builtins, name).__doc__
                if not name.startswith("_") and doc and doc.strip():
                    out.write(json.dumps({"name": name, "doc": doc.strip()}) + "\n")
        return str(path)

    GeminiBatchOperator(
        task_id="summarize_builtins",
        deferrable=True,  # wait in the triggerer, whatever [operators] default_deferrable says
        gemini_conn_id="gemini_vertex",
        input_path=prepare_input(),
        key_field="name",
        prompt_template="Python built-in `{name}`:\n\n{doc}",
        system_instruction="Say in one sentence what this Python built-in is for.",
        model="{{ params.model }}",
        gcs_staging_uri="{{ params.gcs_staging_uri }}",
        max_requests_per_job=50,
        output_path="{{ params.output_dir }}/{{ run_id }}/results.jsonl",
        poll_interval=float(os.environ.get("GEMINI_BATCH_POLL_INTERVAL", "30")),
    )


gemini_vertex_batch()
