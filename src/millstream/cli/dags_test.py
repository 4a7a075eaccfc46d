"""``millstream dags test``: one DAG run in this process, with its tasks' logs as they happen."""

from __future__ import annotations

import sys
from typing import Any

import click

from millstream import control
from millstream.cli.dags import dags
from millstream.cli.env import dags_folder_option
from millstream.cli.output import console, handle_errors, plain_table, styled
from millstream.errors import NotFoundError
from millstream.settings import Settings


@dags.command("test")
@click.argument("dag_id")
@dags_folder_option
@click.option("--conf", default=None, help="Run conf as a JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="Only print the summary.")
@handle_errors
def dags_test(dag_id: str, dags_folder: str | None, conf: str | None, quiet: bool) -> None:
    """Run one DAG run in this process and print every task instance's state."""
    from millstream.sdk.loader import dag_files, load_file
    from millstream.testing import run_dag_inline

    settings = Settings.load(dags_folder=dags_folder)
    conf_dict = control.parse_conf(conf)
    found = None
    errors = []
    for f in dag_files(settings.dags_folder):
        loaded = load_file(f)
        if loaded.error:
            errors.append(loaded.error)
        if dag_id in loaded.dags:
            found = loaded.dags[dag_id]
            break
    if found is None:
        hint = (
            f" ({len(errors)} file(s) failed to import: `millstream dags list-import-errors`)"
            if errors
            else ""
        )
        raise NotFoundError(f"no DAG {dag_id!r} in {settings.dags_folder}{hint}")

    def listen(kind: str, data: dict[str, Any]) -> None:
        if quiet or kind != "ti_finished":
            return
        idx = f"[{data['map_index']}]" if data["map_index"] >= 0 else ""
        err = f"  {data['error']}" if data.get("error") else ""
        console.print(f"  {data['task_id']}{idx}: {styled(data['state'])}{err}", soft_wrap=True)

    result = run_dag_inline(found, conf=conf_dict, listener=listen)
    _print_ti_table(result, {t.task_id: t.display_name for t in found.to_spec().tasks if t.display_name})
    console.print(f"Run {result.run_id}: {styled(result.state.value)}")
    if result.state.value != "success":
        sys.exit(1)


def _print_ti_table(result: Any, names: dict[str, str] | None = None) -> None:
    """``names``: task_display_name by task id, shown with the id."""
    from collections import Counter

    names = names or {}

    table = plain_table("task", "map_index", "state", "tries")
    by_task: dict[str, list[Any]] = {}
    for ti in result.task_instances:
        by_task.setdefault(ti.task_id, []).append(ti)
    for task_id, tis in by_task.items():
        role = " (setup)" if tis[0].is_setup else " (teardown)" if tis[0].is_teardown else ""
        if task_id in names:
            role = f" {names[task_id]}{role}"
        if len(tis) > 20:
            counts = Counter(t.state.value for t in tis)
            summary = ", ".join(f"{n} {styled(s)}" for s, n in counts.most_common())
            table.add_row(task_id + role, f"0..{len(tis) - 1}", summary, "")
            continue
        for ti in tis:
            idx = str(ti.map_index) if ti.map_index >= 0 else ""
            label = f" {ti.label}" if ti.label else ""
            table.add_row(task_id + role, idx + label, styled(ti.state.value), str(ti.try_number))
    console.print(table)
