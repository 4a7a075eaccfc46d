"""Extract, transform, load for one data interval, with retries and a branch.

Shows: the run context (data interval), retries with exponential backoff, a branch that
skips the load on days with no data, and a join that runs after either path.
"""

from datetime import datetime, timedelta

from millstream import dag, task


@dag(
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1), "retry_exponential_backoff": True},
    tags=["example", "etl"],
)
def daily_etl():
    @task
    def extract(data_interval_start=None, data_interval_end=None):
        """Pretend to read the rows of one interval."""
        print(f"extracting rows for {data_interval_start} .. {data_interval_end}")
        return [{"id": i, "amount": i * 10} for i in range(5)]

    @task.branch
    def anything_to_load(rows):
        return "transform" if rows else "nothing_to_do"

    @task
    def transform(rows):
        return sum(r["amount"] for r in rows)

    @task
    def load(total):
        print(f"loaded total {total}")

    @task
    def nothing_to_do():
        print("no rows today")

    @task(trigger_rule="none_failed_min_one_success")
    def notify():
        print("done")

    rows = extract()
    total = transform(rows)
    idle = nothing_to_do()
    anything_to_load(rows) >> [total, idle]
    [load(total), idle] >> notify()


daily_etl()
