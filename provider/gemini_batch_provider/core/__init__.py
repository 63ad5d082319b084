"""The provider's core, free of Airflow imports: records in, batch JSONL out, results back by key.

Usable alone (a notebook, a script); the operators, sensor and trigger are thin adapters over it.
"""
