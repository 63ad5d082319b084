"""DAGs for the operator tests: each operator on a JSONL file and an output path given in the run's conf."""

import pendulum
from airflow.sdk import DAG

from gemini_batch_provider.operators.batch import GeminiBatchOperator
from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator

for dag_id, deferrable in (("gemini_op_deferrable", True), ("gemini_op_polling", False)):
    with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1), params={"in": "", "out": ""}):
        GeminiBatchOperator(
            task_id="batch",
            input_path="{{ params.in }}",
            output_path="{{ params.out }}",
            prompt_template="Summarize: {text}",
            key_field="id",
            deferrable=deferrable,
            poll_interval=0.2,
        )

with DAG(dag_id="gemini_op_online", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
         params={"in": "", "out": ""}):
    GeminiConcurrentGenerateOperator(
        task_id="online",
        input_path="{{ params.in }}",
        output_path="{{ params.out }}",
        prompt_template="Summarize: {text}",
        key_field="id",
        concurrency=4,
        rpm=600,
        max_attempts=20,
    )

for dag_id, routing in (("gemini_op_auto", {"mode": "auto", "online_threshold": 5}),
                        ("gemini_op_deadline", {"deadline": 1.0})):
    with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1), params={"in": "", "out": ""}):
        GeminiBatchOperator(
            task_id="batch",
            input_path="{{ params.in }}",
            output_path="{{ params.out }}",
            prompt_template="Summarize: {text}",
            key_field="id",
            poll_interval=0.2,
            **routing,
        )
