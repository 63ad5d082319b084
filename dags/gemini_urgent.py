"""Urgent Gemini run: explain Python's help topics now, online, instead of waiting for a batch.

Real input that ships with every Python: the help topics of ``pydoc_data.topics`` (what
``help("assert")`` shows). Triggered by hand from the UI; its params choose the model, how many
topics and where the results go. The rows go through GeminiConcurrentGenerateOperator (bounded
concurrency, RPM limit, retries on 429/5xx) and land in the same results format as the batch DAG.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, task

from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator

MAX_TOPIC_CHARS = 6000  # the longest topics run to tens of pages; the start says what they are about


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["gemini", "online"],
    params={
        "model": Param("gemini-3-flash-preview", type="string", description="Gemini model to call"),
        "topic_limit": Param(100, type="integer", minimum=1, maximum=1000, description="At most this many topics"),
        "output_dir": Param(
            os.environ.get("GEMINI_BATCH_OUTPUT_DIR", "/tmp/gemini-batch-results"), type="string",
            description="Folder for this run's input and results files (one subfolder per run)",
        ),
    },
    doc_md=__doc__,
)
def gemini_urgent():
    @task
    def prepare_input(params=None, run_id=None) -> str:
        """Write the help topics to ``<output_dir>/<run_id>/topics.jsonl``; returns the path."""
        from pydoc_data.topics import topics

        path = Path(params["output_dir"]).expanduser() / run_id / "topics.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for name in sorted(topics)[: params["topic_limit"]]:
                out.write(json.dumps({"topic": name, "text": topics[name][:MAX_TOPIC_CHARS]}) + "\n")
        return str(path)

    GeminiConcurrentGenerateOperator(
        task_id="explain_topics",
        input_path=prepare_input(),
        key_field="topic",
        prompt_template='Python help topic "{topic}":\n\n{text}',
        system_instruction="Explain this part of the Python language to a new programmer in one sentence.",
        model="{{ params.model }}",
        generation_config={"thinking_config": {"thinking_level": "minimal"}},  # urgent: answer, don't ponder
        output_path="{{ params.output_dir }}/{{ run_id }}/results.jsonl",
        concurrency=16,
        rpm=int(os.environ.get("GEMINI_URGENT_RPM", "600")),
    )


gemini_urgent()
