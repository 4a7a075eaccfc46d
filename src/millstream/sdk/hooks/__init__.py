"""Hooks: clients of external systems built from a Connection, as in Airflow."""
