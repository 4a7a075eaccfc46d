"""Classic Airflow-style operators, so DAGs written with them port unchanged.

They are :class:`BaseOperator` subclasses with Airflow's arguments and template fields.
Unlike decorated tasks, an operator's ``task_id`` is taken literally: using one twice in
a DAG is an error, as in Airflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from millstream.sdk import execution
from millstream.sdk.baseoperator import BaseOperator


def set_python_arguments(
    op: BaseOperator,
    python_callable: Callable[..., Any],
    op_args: Sequence[Any] | None,
    op_kwargs: Mapping[str, Any] | None,
    templates_dict: Mapping[str, Any] | None,
) -> None:
    """The arguments every operator that calls a Python function takes, as Airflow keeps them."""
    if not callable(python_callable):
        raise TypeError(f"{op.task_id}: python_callable must be callable, got {python_callable!r}")
    op.python_callable = python_callable
    op.op_args = tuple(op_args or ())
    op.op_kwargs = dict(op_kwargs or {})
    op.templates_dict = dict(templates_dict) if templates_dict is not None else None


class EmptyOperator(BaseOperator):
    """A task that does nothing: a join point or a placeholder."""

    ui_color = "#e8f7e4"
    task_kind = "empty"

    def execute(self, context: Mapping[str, Any]) -> None:
        return None


class PythonOperator(BaseOperator):
    """Calls ``python_callable(*op_args, **op_kwargs)``; context values it names as
    parameters (or all, with ``**kwargs``) are passed too, ``templates_dict`` among them."""

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")
    template_fields_renderers = {"templates_dict": "json", "op_args": "py", "op_kwargs": "py"}
    ui_color = "#ffefeb"
    task_kind = "python"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: Mapping[str, Any] | None = None,
        templates_exts: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        set_python_arguments(self, python_callable, op_args, op_kwargs, templates_dict)
        if templates_exts:
            self.template_ext = tuple(templates_exts)

    def execute(self, context: Mapping[str, Any]) -> Any:
        return super(BaseOperator, self).execute(context)


class BashOperator(BaseOperator):
    """Runs ``bash_command`` with ``bash -c``; its last line of output is the result.

    ``bash_command`` ending in ``.sh`` or ``.bash`` names a template file, found in the DAG
    file's folder or ``template_searchpath``. ``env`` replaces the environment unless
    ``append_env=True``; exit code 99 (``skip_on_exit_code``) skips the task.
    """

    template_fields: Sequence[str] = ("bash_command", "env", "cwd")
    template_fields_renderers = {"bash_command": "bash", "env": "json"}
    template_ext: Sequence[str] = (".sh", ".bash")
    ui_color = "#f0ede4"
    task_kind = "bash"

    def __init__(
        self,
        *,
        bash_command: str,
        env: Mapping[str, str] | None = None,
        append_env: bool = False,
        output_encoding: str = "utf-8",
        skip_on_exit_code: int | Sequence[int] | None = 99,
        cwd: str | None = None,
        output_processor: Callable[[str], Any] = lambda output: output,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bash_command = bash_command
        self.env = dict(env) if env is not None else None
        self.append_env = append_env
        self.output_encoding = output_encoding
        self.skip_on_exit_code = skip_on_exit_code
        self.cwd = cwd
        self.output_processor = output_processor

    def execute(self, context: Mapping[str, Any]) -> Any:
        last = execution.run_bash(
            self.bash_command,
            env=self.env,
            append_env=self.append_env,
            cwd=self.cwd,
            output_encoding=self.output_encoding,
            skip_on_exit_code=self.skip_on_exit_code,
            context=context,
            on_start=self._started,
        )
        return self.output_processor(last)

    def _started(self, proc: Any) -> None:
        self._command = proc

    def on_kill(self) -> None:
        """As in Airflow: the command's whole process group gets SIGTERM (then SIGKILL)."""
        execution.terminate(self._command)
