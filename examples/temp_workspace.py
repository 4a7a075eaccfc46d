"""Setup and teardown: a temporary workspace that is always deleted.

A setup creates a workspace, mapped tasks process files in it (one of them fails on a
bad file), and a teardown deletes the workspace whatever happened. The run ends failed
because of the bad file — not because of the cleanup, which succeeded.
"""

import shutil
import tempfile
from pathlib import Path

from millstream import dag, setup, task, teardown


@dag(tags=["example", "setup-teardown"])
def temp_workspace():
    @setup
    def create_workspace():
        path = tempfile.mkdtemp(prefix="millstream-workspace-")
        print(f"created {path}")
        return path

    @task
    def list_files():
        return ["a.csv", "b.csv", "corrupt.csv", "d.csv"]

    @task(map_index_template="{{ name }}")
    def process(workspace, name):
        if name.startswith("corrupt"):
            raise ValueError(f"{name}: unexpected end of data")
        out = Path(workspace) / f"{name}.done"
        out.write_text("ok")
        return str(out)

    @teardown
    def delete_workspace(workspace):
        shutil.rmtree(workspace)
        print(f"deleted {workspace}")

    workspace = create_workspace()
    with workspace >> delete_workspace(workspace):
        process.partial(workspace=workspace).expand(name=list_files())


temp_workspace()
