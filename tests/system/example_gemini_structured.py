"""How-to: structured output and prompt templates (docs/howto/batch.md)."""

from __future__ import annotations

import os
from typing import Literal

import pendulum
from airflow.sdk import DAG
from pydantic import BaseModel

DATA_DIR = os.environ.get("GEMINI_EXAMPLE_DATA", "/data")


# [START howto_structured_output]
class Ticket(BaseModel):
    summary: str
    severity: Literal["low", "medium", "high"]
# [END howto_structured_output]


with DAG(dag_id="example_gemini_structured", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         params={"data_dir": DATA_DIR, "audience": "the on-call engineer"}, tags=["example", "gemini"]) as dag:
    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    GeminiBatchOperator(
        task_id="triage",
        input_path="{{ params.data_dir }}/tickets.jsonl", key_field="ticket_id",
        # [START howto_prompt_template]
        prompt_template='{% raw %}Answer as {{"summary": "...", "severity": "..."}}{% endraw %} '
                        'for {{ params.audience }}: {body}',
        # the model reads: Answer as {"summary": "...", "severity": "..."} for the on-call engineer: <body>
        # [END howto_prompt_template]
        model="gemini-3-flash-preview",
        # [START howto_response_schema]
        response_schema=Ticket,  # or a JSON schema dict; each answer lands validated in "parsed"
        # [END howto_response_schema]
        output_path="{{ params.data_dir }}/triage/{{ run_id }}.jsonl",
        deferrable=True,
    )
