"""DAGs for the operator tests: each operator on a JSONL file and an output path given in the run's conf."""

import pendulum
from airflow.sdk import DAG

from gemini_batch_provider.operators.batch import GeminiBatchOperator
from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator

# Every task reads {{ params.in }} and writes {{ params.out }}, with the same prompt.
COMMON = {
    "input_path": "{{ params.in }}",
    "output_path": "{{ params.out }}",
    "prompt_template": "Summarize: {text}",
    "key_field": "id",
}


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1), params={"in": "", "out": ""})


for dag_id, options in (
    ("gemini_op_deferrable", {"deferrable": True}),
    ("gemini_op_polling", {"deferrable": False}),
    ("gemini_op_auto", {"mode": "auto", "online_threshold": 5}),
    ("gemini_op_deadline", {"deadline": 1.0}),
    ("gemini_op_rerun", {"rerun_failed_online": True}),
):
    with _dag(dag_id):
        GeminiBatchOperator(task_id="batch", poll_interval=0.2, **COMMON, **options)

with _dag("gemini_op_online"):
    GeminiConcurrentGenerateOperator(task_id="online", concurrency=4, rpm=600, max_attempts=20, **COMMON)
