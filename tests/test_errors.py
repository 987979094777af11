"""errors.py's drawing of the error tree matches the classes the package defines."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import dojobber
from dojobber import errors
from dojobber.errors import DojobberError


def package_exceptions() -> list[type[BaseException]]:
    """Every exception class defined in a module of the package (each
    module imported: `make test` installs every extra)."""
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(dojobber.__path__, "dojobber."):
        if info.name.endswith("__main__"):
            continue  # runs the CLI
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == info.name):
                found.append(value)
    return found


def drawing() -> dict[str, tuple[str | None, str, tuple[str, ...]]]:
    """The docstring's tree: name -> (parent, module, other bases)."""
    doc = errors.__doc__ or ""
    block = doc.split("its other bases::\n\n", 1)[1].split("\n\n", 1)[0]
    drawn: dict[str, tuple[str | None, str, tuple[str, ...]]] = {}
    path: list[str] = []
    for line in block.splitlines():
        depth = (len(line) - len(line.lstrip(" ")) - 4) // 4
        match = re.fullmatch(r"\s*(\w+)\s*([\w.]*)\s*(?:\((.*)\))?", line)
        assert match, f"cannot read this line of the drawing: {line!r}"
        name, module, bases = match.groups()
        assert name not in drawn, f"{name} is drawn twice"
        del path[depth:]
        drawn[name] = (path[-1] if path else None, module,
                       tuple(b.strip() for b in bases.split(",")) if bases else ())
        path.append(name)
    return drawn


def test_the_drawing_shows_every_error_class_where_it_sits() -> None:
    classes = [c for c in package_exceptions() if issubclass(c, DojobberError)]
    drawn = drawing()
    assert sorted(drawn) == sorted(c.__name__ for c in classes), (
        "errors.py's docstring must draw exactly the DojobberError subclasses defined"
    )
    for cls in classes:
        parent, module, others = drawn[cls.__name__]
        ours = [b for b in cls.__bases__ if issubclass(b, DojobberError)]
        assert parent == (ours[0].__name__ if ours else None), cls
        where = "" if cls.__module__ == "dojobber.errors" else cls.__module__
        assert module == where.removeprefix("dojobber."), cls
        assert others == tuple(b.__name__ for b in cls.__bases__
                               if not issubclass(b, DojobberError)), cls


def test_exception_classes_outside_the_tree_are_named_too() -> None:
    doc = errors.__doc__ or ""
    outside = [c for c in package_exceptions() if not issubclass(c, DojobberError)]
    assert outside  # (the walk found the modules)
    for cls in outside:
        module = cls.__module__.removeprefix("dojobber.")
        assert f"{module}.{cls.__name__}" in doc or (
            f"``{cls.__name__}``" in doc and module in doc
        ), f"{cls.__module__}.{cls.__name__} is not named in errors.py's docstring"
