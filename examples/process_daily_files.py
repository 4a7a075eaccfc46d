"""The reference pipeline: fan out over files discovered at run time, then fan in.

Identical to the Airflow 3 version except for the import line.
"""

from datetime import datetime

from millstream import dag, task


@dag(schedule="@daily", start_date=datetime(2025, 1, 1), catchup=False)
def process_daily_files():
    @task
    def list_files():
        """Discover files to process — could be 5 or 500."""
        # In reality, this would list from S3, GCS, etc.
        return ["file_001.csv", "file_002.csv", "file_003.csv"]

    @task
    def process_file(filename: str):
        """Process a single file. Millstream creates one task instance per file."""
        print(f"Processing {filename}")
        return f"Processed: {filename}"

    @task
    def summarize(results: list[str]):
        """Collect all results after parallel processing."""
        print(f"Completed {len(results)} files")

    files = list_files()
    processed = process_file.expand(filename=files)  # Dynamic expansion
    summarize(processed)


process_daily_files()
