"""Python callables run in another interpreter: ``PythonVirtualenvOperator`` (a cached
virtual environment with its own requirements), ``ExternalPythonOperator`` (an existing
interpreter), their branching forms, and the ``@task.virtualenv`` / ``@task.external_python``
decorators.

As in Airflow, the callable travels as its source code — so it must import what it uses
inside its body — and its arguments and result cross the boundary serialized (``pickle``
by default; ``cloudpickle`` or ``dill`` on request, installed into the environment). An
exception inside comes back with its traceback; ``skip_on_exit_code`` skips the task.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from millstream.errors import DagDefinitionError, SkipTask
from millstream.sdk import execution
from millstream.sdk.current import current_dag
from millstream.sdk.operators import PythonOperator
from millstream.sdk.standard import venvs
from millstream.sdk.standard.branch import BaseBranchOperator
from millstream.sdk.xcom import XComArg

SERIALIZERS = ("pickle", "cloudpickle", "dill")
#: Context values a callable in another interpreter may name as parameters: plain data
#: that every interpreter can unpickle (no Millstream objects on the other side).
PORTABLE_CONTEXT = (
    "ds", "ds_nodash", "ts", "ts_nodash", "ts_nodash_with_tz", "logical_date", "data_interval_start",
    "data_interval_end", "run_id", "params", "conf", "templates_dict", "map_index_template",
)  # fmt: skip

_SCRIPT = """\
import {lib}
import sys
import traceback

with open(sys.argv[4]) as _f:
    virtualenv_string_args = _f.read().splitlines()
if {expect_airflow}:
    try:
        import airflow  # noqa: F401
    except ImportError:
        print("warning: expect_airflow=True, but this environment has no airflow package; "
              "its Variables, macros and XComs are not available here", file=sys.stderr)

{source}

with open(sys.argv[1], "rb") as _f:
    _arg = {lib}.load(_f)
try:
    _result = {name}(*_arg["args"], **_arg["kwargs"])
except BaseException:
    with open(sys.argv[3], "w") as _f:
        _f.write(traceback.format_exc())
    raise
with open(sys.argv[2], "wb") as _f:
    {lib}.dump(_result, _f)
"""


class IsolatedError(RuntimeError):
    """The callable raised in the other interpreter; the message holds its traceback."""


def callable_source(fn: Callable[..., Any], where: str) -> str:
    """The function's own source without its decorators: what the other side runs."""
    if getattr(fn, "__name__", "") == "<lambda>":
        raise DagDefinitionError(f"{where}: a lambda cannot run in another interpreter; use a def function")
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as e:
        raise DagDefinitionError(f"{where}: the source of {fn!r} cannot be read ({e})") from None
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(("def ", "async def ")))
    return "\n".join(lines[start:]) + "\n"


def _local_serializer(name: str) -> Any:
    """The serializer on the worker's side. ``dill`` and ``cloudpickle`` write pickles that
    stdlib ``pickle`` reads for plain data, so the worker does not need them installed."""
    import importlib
    import pickle

    try:
        return importlib.import_module(name)
    except ImportError:
        return pickle


class _IsolatedPython(PythonOperator):
    """What the virtualenv and external-Python operators share: the other side's run."""

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs", "requirements")

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        serializer: str | None = None,
        use_dill: bool = False,
        op_args: Sequence[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        string_args: Sequence[str] | None = None,
        templates_dict: Mapping[str, Any] | None = None,
        templates_exts: Sequence[str] | None = None,
        expect_airflow: bool = True,
        skip_on_exit_code: int | Sequence[int] | None = None,
        env_vars: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            templates_dict=templates_dict,
            templates_exts=templates_exts,
            **kwargs,
        )
        serializer = serializer or ("dill" if use_dill else "pickle")
        if serializer not in SERIALIZERS:
            raise DagDefinitionError(
                f"{type(self).__name__} {self.task_id!r}: serializer={serializer!r}; use one of {SERIALIZERS}",
                filename=self.filename,
                lineno=self.lineno,
            )
        self.serializer = serializer
        self.string_args = list(string_args or [])
        self.expect_airflow = expect_airflow
        self.skip_on_exit_code = (
            () if skip_on_exit_code is None
            else (skip_on_exit_code,) if isinstance(skip_on_exit_code, int)
            else tuple(skip_on_exit_code)
        )  # fmt: skip
        self.env_vars = dict(env_vars or {})
        self.inherit_env = inherit_env
        self.requirements: list[str] = []
        self._source = callable_source(python_callable, f"{type(self).__name__} {self.task_id!r}")

    def _python(self) -> str:
        raise NotImplementedError

    def _arguments(self, context: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        portable = {k: context[k] for k in PORTABLE_CONTEXT if k in context}
        if self.templates_dict is not None:
            portable["templates_dict"] = self.templates_dict
        args, kwargs = execution.call_arguments(self.python_callable, self.op_args, self.op_kwargs, portable)  # type: ignore[arg-type]
        return tuple(args), kwargs

    def execute(self, context: Mapping[str, Any]) -> Any:
        python = self._python()
        args, kwargs = self._arguments(context)
        lib = _local_serializer(self.serializer)
        name = self.python_callable.__name__  # type: ignore[union-attr]
        with tempfile.TemporaryDirectory(prefix="millstream-python-") as tmp:
            folder = Path(tmp)
            (folder / "script.py").write_text(
                _SCRIPT.format(
                    lib=self.serializer, source=self._source, name=name, expect_airflow=self.expect_airflow
                )
            )
            with open(folder / "args.pickle", "wb") as f:
                lib.dump({"args": list(args), "kwargs": kwargs}, f)
            (folder / "string_args.txt").write_text("\n".join(map(str, self.string_args)))
            env = {**(os.environ if self.inherit_env else {}), **self.env_vars}
            cmd = [
                python,
                str(folder / "script.py"),
                *(str(folder / n) for n in ("args.pickle", "out.pickle", "error.txt")),
            ]
            print(f"Running {name} with {python}")
            proc = subprocess.Popen(
                [*cmd, str(folder / "string_args.txt")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=tmp,
            )  # fmt: skip
            self._proc = proc
            assert proc.stdout is not None
            for line in iter(proc.stdout.readline, b""):
                sys.stdout.write(line.decode("utf-8", "replace"))
            code = proc.wait()
            if code in self.skip_on_exit_code:
                raise SkipTask(f"the callable's process exited with code {code}, one of skip_on_exit_code")
            error = folder / "error.txt"
            if code != 0:
                detail = error.read_text() if error.exists() else f"the process exited with code {code}"
                raise IsolatedError(f"{name} failed in {python}:\n{detail}")
            with open(folder / "out.pickle", "rb") as f:
                return lib.load(f)

    def on_kill(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            execution.terminate(proc)


class PythonVirtualenvOperator(_IsolatedPython):
    """Runs ``python_callable`` in a virtual environment with ``requirements`` (a list, or
    a requirements file's name), cached by their hash and reused across attempts and runs."""

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        requirements: Sequence[str] | str | None = None,
        python_version: str | None = None,
        system_site_packages: bool = True,
        pip_install_options: Sequence[str] | None = None,
        index_urls: Sequence[str] | str | None = None,
        venv_cache_path: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(python_callable=python_callable, **kwargs)
        if isinstance(requirements, str):
            requirements = [r for r in requirements.splitlines() if r.strip() and not r.startswith("#")]
        self.requirements = list(requirements or [])
        if self.serializer != "pickle" and not any(
            r.split("=")[0].strip() == self.serializer for r in self.requirements
        ):
            self.requirements.append(self.serializer)  # the other side needs it too
        self.python_version = str(python_version) if python_version is not None else None
        self.system_site_packages = system_site_packages
        self.pip_install_options = list(pip_install_options or [])
        self.index_urls = [index_urls] if isinstance(index_urls, str) else list(index_urls or [])
        self.venv_cache_path = venv_cache_path

    def _python(self) -> str:
        folder = venvs.environment(
            self.requirements,
            python_version=self.python_version,
            system_site_packages=self.system_site_packages,
            pip_install_options=self.pip_install_options,
            index_urls=self.index_urls,
            venv_cache_path=self.venv_cache_path,
        )
        return str(folder / "bin" / "python")


class ExternalPythonOperator(_IsolatedPython):
    """Runs ``python_callable`` with the interpreter at ``python`` (an existing venv's)."""

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs", "python")

    def __init__(self, *, python: str, python_callable: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(python_callable=python_callable, **kwargs)
        self.python = python

    def _python(self) -> str:
        if not os.path.exists(self.python):
            raise FileNotFoundError(
                f"{type(self).__name__} {self.task_id!r}: no interpreter at {self.python!r}"
            )
        return self.python


class BranchPythonVirtualenvOperator(BaseBranchOperator, PythonVirtualenvOperator):
    """A branch whose choice is made in a virtual environment."""

    def choose_branch(self, context: Mapping[str, Any]) -> Any:
        return PythonVirtualenvOperator.execute(self, context)


class BranchExternalPythonOperator(BaseBranchOperator, ExternalPythonOperator):
    """A branch whose choice is made by another interpreter."""

    def choose_branch(self, context: Mapping[str, Any]) -> Any:
        return ExternalPythonOperator.execute(self, context)


class IsolatedDecorator:
    """``@task.virtualenv(...)`` and kin: each call adds one operator to the DAG and
    returns its output, as a ``@task`` function's call does."""

    def __init__(
        self, operator_class: type[_IsolatedPython], fn: Callable[..., Any], kwargs: Mapping[str, Any]
    ):
        self.operator_class = operator_class
        self.function = fn
        self.kwargs = dict(kwargs)
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        base = self.kwargs.get("task_id") or self.function.__name__
        dag = self.kwargs.get("dag") or current_dag()
        task_id, n = base, 0
        while dag is not None and task_id in dag.tasks:
            n += 1
            task_id = f"{base}__{n}"
        op = self.operator_class(
            **{**self.kwargs, "task_id": task_id},
            python_callable=self.function,
            op_args=args,
            op_kwargs=kwargs,
        )
        return XComArg(op)

    def override(self, **kwargs: Any) -> IsolatedDecorator:
        return IsolatedDecorator(self.operator_class, self.function, {**self.kwargs, **kwargs})


def isolated_decorator(operator_class: type[_IsolatedPython]) -> Callable[..., Any]:
    def make(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        if python_callable is not None:
            return IsolatedDecorator(operator_class, python_callable, kwargs)
        return lambda fn: IsolatedDecorator(operator_class, fn, kwargs)

    return make
