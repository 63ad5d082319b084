"""How-to: records from an upstream task (TaskFlow), bad rows landed as failed, and the rows read
back downstream as dicts and as a DataFrame (docs/howto/taskflow.md)."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, task

DATA_DIR = os.environ.get("GEMINI_EXAMPLE_DATA", "/data")

with DAG(dag_id="example_gemini_taskflow", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         params={"data_dir": DATA_DIR}, tags=["example", "gemini"]) as dag:
    # [START howto_taskflow_records]
    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    @task
    def fetch_reviews() -> list[dict]:
        """The rows to send: a list of dicts (small sets; a large one belongs in a file, as input_path)."""
        return [
            {"review_id": "r1", "text": "The kettle boils in a minute and looks good on the counter."},
            {"review_id": "r2", "text": "It leaked after a week; the seal came loose."},
            {"review_id": "r3", "text": None},  # a row whose prompt can't be built
        ]

    scored = GeminiBatchOperator(
        task_id="score_reviews",
        records=fetch_reviews(),          # resolved when the try starts; its strings are never rendered
        key_field="review_id",
        prompt_template="Is this review positive or negative? {text}",
        model="gemini-3-flash-preview",
        output_path="{{ params.data_dir }}/reviews/{{ run_id }}.jsonl",
        on_bad_row="land",                # r3 lands as failed (path "refused"); the rest are sent
        deferrable=True,
    )
    # [END howto_taskflow_records]

    # [START howto_read_results]
    from gemini_batch_provider.results import read_results, results_frame

    @task
    def report(summary: dict) -> dict:
        """The summary (the operator's XCom) is all it needs: the rows are read from wherever they landed."""
        refused = [row["key"] for row in read_results(summary, status="failed")]
        frame = results_frame(summary, status="succeeded")  # a pandas DataFrame: the pandas extra
        return {"answered": len(frame), "refused": refused, "longest": int(frame["text"].str.len().max())}

    report(scored.output)
    # [END howto_read_results]
