"""Airflow's standard provider (``apache-airflow-providers-standard`` 3.3): branch and skip
operators, time, file and cross-DAG sensors, isolated-Python operators and the triggers
deferrable tasks wait on. Names, arguments and skip semantics are Airflow's."""
