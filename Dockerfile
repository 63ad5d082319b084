# Airflow 3.3.2 with this provider installed from the repository (used by docker-compose.yaml).
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:0 pyproject.toml README.md /opt/provider/
COPY --chown=airflow:0 provider /opt/provider/provider
RUN pip install --no-cache-dir "apache-airflow==3.3.2" "/opt/provider[images]"
