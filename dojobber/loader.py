"""Loading the root job a target names: ``FILE.py:Root`` or ``pkg.module:Root``
(used by the command line and by board workers).

Every problem is a :class:`TargetError` with a one-line message that says
what to do; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import re
import sys
from types import ModuleType
from typing import Any

from .errors import DojobberError
from .job import Job

__all__ = ["TargetError", "absolute_target", "load_root", "parse_args"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class TargetError(DojobberError):
    """The command line names a job, file, module or argument that will not do."""


def parse_args(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["host=a", "port=22"]`` -> ``{"host": "a", "port": "22"}`` (values
    stay strings; the last of a repeated key wins)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            raise TargetError(f"--arg expects KEY=VALUE, got {pair!r}; write --arg {pair}=...")
        key = key.strip()
        if not _IDENTIFIER.match(key):
            raise TargetError(
                f"--arg {pair!r}: {key!r} is not a valid keyword argument name "
                "(letters, digits, underscores)"
            )
        out[key] = value
    return out


def load_root(spec: str) -> type[Job]:
    """The job class named by ``spec``: ``path/to/file.py:Name``,
    ``package.module:Name``, or either without ``:Name`` when the file or
    module defines exactly one job that no other job there depends on."""
    source, sep, name = spec.rpartition(":")
    if not sep:
        source, name = spec, ""
    if not source:
        raise TargetError(f"{spec!r}: give FILE.py:Job or module:Job")
    module = _load_file(source) if _looks_like_file(source) else _import(source)
    if not name:
        return _only_root(module, source)
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            known = ", ".join(sorted(_jobs_in(module))) or "none"
            raise TargetError(f"{source} has no {name!r}; the job classes there: {known}")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Job)):
        raise TargetError(f"{source}:{name} is {obj!r}, not a subclass of dojobber.Job")
    return obj


def _looks_like_file(source: str) -> bool:
    return source.endswith(".py") or os.sep in source or os.path.isfile(source)


def _load_file(path: str) -> ModuleType:
    if not os.path.exists(path):
        raise TargetError(f"no such file: {path}")
    if os.path.isdir(path):
        raise TargetError(f"{path} is a directory; give a Python file (FILE.py:Job)")
    stem = os.path.splitext(os.path.basename(path))[0]
    name = stem if _IDENTIFIER.match(stem) and stem not in sys.modules else "__dojobber_target__"
    loader = importlib.machinery.SourceFileLoader(name, os.path.abspath(path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # so jobs can be pickled / found by name
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)  # as `python FILE.py` would, for its imports
    try:
        loader.exec_module(module)
    except SyntaxError as err:
        sys.modules.pop(name, None)
        raise TargetError(
            f"{path} is not a Python file this Python can read "
            f"(SyntaxError: {err.msg}, line {err.lineno})"
        ) from err
    except ValueError as err:  # e.g. null bytes: a binary file
        sys.modules.pop(name, None)
        raise TargetError(f"{path} is not a Python file ({err})") from err
    except Exception as err:
        sys.modules.pop(name, None)
        raise TargetError(f"importing {path} failed: {type(err).__name__}: {err}") from err
    return module


def _import(name: str) -> ModuleType:
    if os.curdir not in sys.path and "" not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: the current directory first
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and (name == err.name or name.startswith(err.name + ".")):
            raise TargetError(
                f"no module named {name!r}; give a file (path/to/jobs.py:Job) or a module "
                "importable from here (package.module:Job)"
            ) from err
        raise TargetError(f"importing {name} failed: ModuleNotFoundError: {err}") from err
    except Exception as err:
        raise TargetError(f"importing {name} failed: {type(err).__name__}: {err}") from err


def _jobs_in(module: ModuleType) -> dict[str, type[Job]]:
    """Job classes defined in ``module`` itself, by attribute name."""
    return {
        attr: obj
        for attr, obj in vars(module).items()
        if isinstance(obj, type)
        and issubclass(obj, Job)
        and obj.__module__ == module.__name__
    }


def _only_root(module: ModuleType, source: str) -> type[Job]:
    jobs = _jobs_in(module)
    needed = {
        dep
        for cls in jobs.values()
        for dep in (cls.DEPS if isinstance(cls.DEPS, (list, tuple)) else ())
    }
    roots = sorted(attr for attr, cls in jobs.items() if cls not in needed)
    if len(roots) == 1:
        return jobs[roots[0]]
    if not roots:
        raise TargetError(f"{source} defines no job classes; give FILE.py:Job")
    raise TargetError(
        f"{source} has several root jobs ({', '.join(roots)}); name one: {source}:{roots[0]}"
    )


def absolute_target(target: str) -> str:
    """``site.py:Root`` -> ``/abs/path/site.py:Root``, so that a worker in any
    directory finds the file; module targets stay as they are."""
    source, sep, name = target.rpartition(":")
    if not sep:
        source, name = target, ""
    if _looks_like_file(source):
        source = os.path.abspath(source)
    return f"{source}:{name}" if name else source
