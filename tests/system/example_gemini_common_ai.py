"""How-to: Gemini as the backend of Airflow's common.ai batch layer (docs/howto/common_ai.md).
Needs the ``common-ai`` extra."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, task
from pydantic import BaseModel

DATA_DIR = os.environ.get("GEMINI_EXAMPLE_DATA", "/data")


class Summary(BaseModel):
    summary: str


with DAG(dag_id="example_gemini_common_ai", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         tags=["example", "gemini"]) as dag:
    # [START howto_common_ai_llm_batch]
    @task.llm_batch(model_id="gemini:gemini-3-flash-preview", llm_conn_id="gemini_default",
                    result_path=DATA_DIR + "/llm-batch/{{ run_id }}", output_type=Summary)
    def prompts() -> list[str]:
        docs = ["Airflow schedules DAGs of tasks.", "Gemini's Batch API answers within a day at half price."]
        return [f"Summarize: {doc}" for doc in docs]
    # [END howto_common_ai_llm_batch]

    prompts()
