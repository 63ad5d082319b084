"""How-to: small urgent sets online, Flex at the batch price, and letting the operator choose
(docs/howto/online.md)."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

DATA_DIR = os.environ.get("GEMINI_EXAMPLE_DATA", "/data")

with DAG(dag_id="example_gemini_online", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         params={"data_dir": DATA_DIR}, tags=["example", "gemini"]) as dag:
    # [START howto_operator_gemini_concurrent]
    from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator

    GeminiConcurrentGenerateOperator(
        task_id="summarize_now",
        input_path="{{ params.data_dir }}/tickets.jsonl", key_field="ticket_id",
        prompt_template="Summarize this ticket: {body}",
        model="gemini-3-flash-preview",
        output_path="{{ params.data_dir }}/urgent/{{ run_id }}.jsonl",
        concurrency=32,      # calls in flight at most
        rpm=1000, tpm=None,  # the model's quota; calls are spaced evenly
        request_timeout=120, max_attempts=12,
    )
    # [END howto_operator_gemini_concurrent]

    # [START howto_operator_gemini_flex]
    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    GeminiBatchOperator(
        task_id="summarize_within_the_hour",
        input_path="{{ params.data_dir }}/tickets.jsonl", key_field="ticket_id",
        prompt_template="Summarize this ticket: {body}",
        model="gemini-3-flash-preview",
        output_path="{{ params.data_dir }}/flex/{{ run_id }}.jsonl",
        mode="flex",           # every row online at the Flex tier: the batch price, no job to wait for
        deadline=3600,         # seconds; rows Flex has not answered by then ...
        on_deadline="online",  # ... go to the Standard tier ("cancel": land them cancelled)
    )
    # [END howto_operator_gemini_flex]

    # [START howto_operator_gemini_auto]
    GeminiBatchOperator(
        task_id="summarize_cheapest",
        input_path="{{ params.data_dir }}/tickets.jsonl", key_field="ticket_id",
        prompt_template="Summarize this ticket: {body}",
        model="gemini-3-flash-preview",
        output_path="{{ params.data_dir }}/auto/{{ run_id }}.jsonl",
        mode="auto",              # Standard for a small set, Flex under a short deadline, else a batch job
        online_threshold=100,     # "small": at most this many rows
        max_cost_usd=5.0,         # fails before anything is sent if the estimate is higher
        deferrable=True,
    )
    # [END howto_operator_gemini_auto]
