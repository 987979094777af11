"""Every error class of the package pickles and unpickles to itself, so that
errors cross to and from process-pool and dask workers intact (instead of
arriving as RemoteError)."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
from typing import Any

import pytest

import dojobber

#: Sample values for constructor parameters, by name (the rest get a string).
SAMPLES: dict[str, Any] = {
    "failures": [("Tidy", OSError("disk full"))],
    "cause": ValueError("the cause"),
    "error": ValueError("the error"),
    "original": ValueError("the original"),
    "lost": 2,
    "holder": {"pid": 1, "host": "h", "started": 0.0, "root": "Root"},
    "waited": 1.5,
    "deps": 42,
    "obj": 42,
    "value": -1,
    "tries": 0,
    "delay": float("inf"),
    "cycle": ["A", "B", "A"],
    "names": ["a", "b"],
    "options": ["a", "b"],
    "missing": ["a"],
    "request_id": 7,
    "status": 503,
    "code": 1,
    "exit_status": 1,
    "expected": 10,
    "got": 9,
    "size": 10,
    "differences": ["memory 1 != 2"],
    "diffs": ["memory 1 != 2"],
    "candidates": ["a.qcow2", "b.qcow2"],
    "timeout": 1.0,
    "seconds": 1.0,
    "lines": ["last line"],
    "tail": ["last line"],
    "errors": {"lease": "none"},
    "path": "/x/y",
    "first": int,
    "second": float,
}


def _modules() -> list[str]:
    names = ["dojobber"]
    for info in pkgutil.walk_packages(dojobber.__path__, "dojobber."):
        names.append(info.name)
    return names


def _error_classes() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        if name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional extra that is not installed
            continue
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, BaseException)
                    and obj.__module__.startswith("dojobber")):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[key] for key in sorted(found)]


def _make(cls: type[BaseException]) -> BaseException:
    params = [
        p for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.default is p.empty
    ]
    args = [SAMPLES.get(p.name, f"<{p.name}>") for p in params if p.kind is not p.KEYWORD_ONLY]
    kwargs = {p.name: SAMPLES.get(p.name, f"<{p.name}>") for p in params
              if p.kind is p.KEYWORD_ONLY}
    return cls(*args, **kwargs)


CLASSES = _error_classes()


def test_the_walk_finds_the_errors_of_every_part() -> None:
    names = {cls.__name__ for cls in CLASSES}
    assert {"CleanupError", "ChecksumMismatchError", "SSHConnectError", "DomainDriftError",
            "LockHeldError", "RecordsError", "BoardError", "RenderError"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_pickles_and_unpickles_to_itself(cls: type[BaseException]) -> None:
    error = _make(cls)
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is cls
    assert str(back) == str(error)
    assert back.args == error.args
    assert set(vars(back)) == set(vars(error))
    for key, value in vars(error).items():  # (by repr: exceptions do not compare equal)
        assert repr(getattr(back, key)) == repr(value), key
