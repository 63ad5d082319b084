"""The "Gemini batches" page of the Airflow UI (Airflow 3.1+): ``plugin`` registers ``app``."""
