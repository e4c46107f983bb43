"""What the Glitchflow DAG (``dags/glitchflow_batch.py``) runs: the API client, local and pod steps.

Importing this package costs nothing but the standard library: Airflow providers, requests and the
Kubernetes client are imported inside the functions that use them, so the DAG file parses fast.
"""
