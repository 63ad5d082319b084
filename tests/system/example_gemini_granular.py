"""How-to: submit, wait and land as three tasks (docs/howto/granular.md)."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

DATA_DIR = os.environ.get("GEMINI_EXAMPLE_DATA", "/data")

with DAG(dag_id="example_gemini_granular", schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         catchup=False, params={"data_dir": DATA_DIR}, tags=["example", "gemini"]) as dag:
    # [START howto_operator_gemini_submit_sensor_results]
    from gemini_batch_provider.operators.results import GeminiBatchResultsOperator
    from gemini_batch_provider.operators.submit import GeminiSubmitBatchOperator
    from gemini_batch_provider.sensors.batch import GeminiBatchJobSensor

    common = dict(input_path="{{ params.data_dir }}/tickets.jsonl", key_field="ticket_id",
                  prompt_template="Summarize: {body}", model="gemini-3-flash-preview",
                  output_path="{{ params.data_dir }}/results/{{ ds }}.jsonl", max_requests_per_job=50_000)
    submit = GeminiSubmitBatchOperator(task_id="submit", **common)                          # XCom: job names
    wait = GeminiBatchJobSensor(task_id="wait", job_names=submit.output, deferrable=True)   # any job names
    land = GeminiBatchResultsOperator(task_id="land", job_names=submit.output, **common)
    submit >> wait >> land
    # [END howto_operator_gemini_submit_sensor_results]
