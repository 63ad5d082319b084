"""DAGs for tests/airflow/test_operator.py: GeminiBatchOperator on a JSONL file given in the run's conf."""

import pendulum
from airflow.sdk import DAG

from gemini_batch_provider.operators.batch import GeminiBatchOperator

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
