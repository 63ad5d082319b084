"""How-to: a night's rows through one Gemini batch task (docs/howto/batch.md, and the README's example).

Every example DAG in this folder runs in ``tests/system/test_examples.py`` on the emulator, and the
docs include their code from here, between the ``[START ...]`` and ``[END ...]`` lines.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

# Where the example's files live; every path below is under it.
DATA_DIR = os.environ.get("GEMINI_EXAMPLE_DATA", "/data")

with DAG(dag_id="example_gemini_batch", schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         catchup=False, params={"data_dir": DATA_DIR}, tags=["example", "gemini"]) as dag:
    # [START howto_operator_gemini_batch]
    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    GeminiBatchOperator(
        task_id="summarize",
        input_path="{{ params.data_dir }}/tickets.jsonl",  # or records=[{...}, ...]; .jsonl or .csv
        key_field="ticket_id",                             # unique per row; the row index when omitted
        prompt_template="Summarize this ticket: {body}",
        system_instruction="Answer in one sentence.",
        generation_config={"thinking_config": {"thinking_level": "low"}},  # any types.GenerationConfig field
        model="gemini-3-flash-preview",
        output_path="{{ params.data_dir }}/results/{{ ds }}.jsonl",
        answer_store="{{ params.data_dir }}/answers",      # answers kept across nights: each sends only what changed
        deferrable=True,                                   # wait in the triggerer, holding no worker slot
    )
    # [END howto_operator_gemini_batch]
