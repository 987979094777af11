"""Walk the ``DEPS`` of a root job into a validated, indexed job graph.

The walk is iterative (no recursion limit) and linear in jobs + edges.  Jobs
are numbered in depth-first post-order over ``DEPS`` as listed, which is a
topological order: every job comes after all of its dependencies.  The engine
schedules on the plain lists kept here; :attr:`JobGraph.nx` gives the same
graph as a :class:`networkx.DiGraph` (built on first use) for analysis and
rendering.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ._gc import relaxed_gc
from .backoff import Backoff
from .errors import (
    ConfigurationError,
    DependencyCycleError,
    DepsIteratorError,
    DepsNotIterableError,
    DuplicateJobNameError,
    InvalidRetryDelayError,
    InvalidTimeoutError,
    InvalidTriesError,
    MissingOptionError,
    NotAJobError,
    UnknownJobError,
)
from .job import REQUIRED, Job, JobMeta

if TYPE_CHECKING:
    import networkx

__all__ = ["JobGraph", "build"]


@dataclass(eq=False)
class JobGraph:
    """A validated job graph; jobs are numbered in dependency order."""

    root: type[Job]
    #: Job classes, dependencies before dependants (DFS post-order).
    classes: list[type[Job]]
    #: ``names[i]`` is ``classes[i].__name__``.
    names: list[str]
    #: Indices of each job's direct dependencies, in ``DEPS`` order.
    deps: list[tuple[int, ...]]
    #: Tries and retry delay of each job, defaults applied (for a job whose
    #: ``RETRY_DELAY`` is a growing :class:`~dojobber.Backoff`, its first
    #: wait; the policy is in :attr:`backoffs`).
    tries: list[int]
    delays: list[float]
    #: Jobs whose waits between tries grow: graph index -> policy (empty
    #: for most graphs).  The n-th retry waits ``backoffs[i].delay(n)``.
    backoffs: dict[int, Backoff] = field(default_factory=dict)
    #: Each job's TIMEOUT (seconds, or None for no limit); None when no job
    #: of the graph has one (the engine then pays nothing for timeouts).
    timeouts: list[float | None] | None = None
    dependants: list[list[int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        dependants: list[list[int]] = [[] for _ in self.names]
        for i, deps in enumerate(self.deps):
            if deps:  # (most jobs of a wide graph have none)
                for d in deps:
                    dependants[d].append(i)
        self.dependants = dependants

    @cached_property
    def index(self) -> dict[str, int]:
        """Graph index of each job name."""
        return {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.index

    @property
    def root_name(self) -> str:
        return self.names[-1]

    def lookup(self, node: str | type[Job]) -> int:
        """Index of a job given by class or name; UnknownJobError if absent."""
        name = node if isinstance(node, str) else getattr(node, "__name__", repr(node))
        i = self.index.get(name)
        if i is None or (not isinstance(node, str) and self.classes[i] is not node):
            raise UnknownJobError(name, self.root_name)
        return i

    def reachable(self, start: int) -> list[bool]:
        """Which jobs ``start`` depends on, directly or not (itself included)."""
        if start == len(self.names) - 1:
            return [True] * len(self.names)  # the root: the walk found only these
        seen = [False] * len(self.names)
        seen[start] = True
        todo = [start]
        deps = self.deps
        while todo:
            for d in deps[todo.pop()]:
                if not seen[d]:
                    seen[d] = True
                    todo.append(d)
        return seen

    def upstream_of(self, failed: Iterable[int]) -> list[bool]:
        """Which jobs depend, directly or not, on any of ``failed``."""
        hit = [False] * len(self.names)
        todo = list(failed)
        for i in todo:
            hit[i] = True
        while todo:
            for d in self.dependants[todo.pop()]:
                if not hit[d]:
                    hit[d] = True
                    todo.append(d)
        return hit

    @cached_property
    def nx(self) -> networkx.DiGraph:
        """The graph as networkx: nodes are job names, edges job -> dependency.

        Each node carries ``job`` (the class) and ``order`` (its index).
        """
        import networkx

        graph = networkx.DiGraph()
        names = self.names
        graph.add_nodes_from(
            (name, {"job": cls, "order": i})
            for i, (name, cls) in enumerate(zip(names, self.classes, strict=True))
        )
        graph.add_edges_from(
            (names[i], names[d]) for i, deps in enumerate(self.deps) for d in deps
        )
        return graph


_EMPTY: list[type[Job]] = []


def _deps_of(cls: type[Job], raw: Any) -> list[type[Job]]:
    """``cls``'s dependencies, from its ``DEPS`` value ``raw``, checked."""
    kind = type(raw)
    if kind is tuple or kind is list:
        if not raw:
            return _EMPTY
    elif raw is None:
        return _EMPTY
    elif isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
        raise DepsNotIterableError(cls.__name__, raw)
    elif isinstance(raw, Iterator):  # a generator: read once, then empty
        raise DepsIteratorError(cls.__name__, raw)
    deps: list[type[Job]] = list(raw)
    for dep in deps:
        # type() is JobMeta for nearly every job: one C-level test.
        if type(dep) is not JobMeta and not (isinstance(dep, type) and issubclass(dep, Job)):
            raise NotAJobError(cls.__name__, dep)
    return deps


def _tries_of(cls: type[Job], default: int) -> int:
    tries = cls.TRIES if cls.TRIES is not None else default
    if type(tries) is int and tries >= 1:
        return tries
    count = tries_count(tries)
    if count is None:
        raise InvalidTriesError(cls.__name__, tries)
    return count


def tries_count(tries: object) -> int | None:
    """How many attempts a ``TRIES`` / ``default_tries`` value gives, as
    upstream DoJobber counts them (None when the value is not valid).

    Upstream counts a job's tries down by one per attempt while the count is
    above zero, so a fractional value rounds up: 1.0 gives one try, 1.1 and
    1.9 two, 2.5 three.  Values below 1, booleans, NaN, infinity and
    non-numbers are refused.
    """
    if isinstance(tries, bool) or not isinstance(tries, numbers.Real):
        return None
    if isinstance(tries, numbers.Integral):
        count = int(tries)
        return count if count >= 1 else None
    value = float(tries)
    if not math.isfinite(value) or value < 1:
        return None
    return math.ceil(value)


#: Longest RETRY_DELAY (seconds, ~31 years): longer ones (inf, 1e300) cannot
#: be slept and are refused at configure().
MAX_RETRY_DELAY = 1e9


def _delay_of(cls: type[Job], default: float | Backoff) -> float | Backoff:
    """A job's RETRY_DELAY (else ``default``): seconds, or a growing
    :class:`~dojobber.Backoff` (a constant one is its seconds)."""
    delay = cls.RETRY_DELAY if cls.RETRY_DELAY is not None else default
    if (type(delay) is float or type(delay) is int) and 0 <= delay <= MAX_RETRY_DELAY:
        return delay
    if isinstance(delay, Backoff):
        return delay.initial if delay.constant else delay
    if isinstance(delay, bool) or not isinstance(delay, numbers.Real) \
            or not 0 <= delay <= MAX_RETRY_DELAY:  # (NaN fails this too)
        raise InvalidRetryDelayError(cls.__name__, delay)
    return float(delay)


def _own_options(cls: type[Job]) -> bool:
    """Whether ``cls`` has TRIES, RETRY_DELAY or REQUIRED options to check."""
    return bool(cls._required_options or cls.TRIES is not None or cls.RETRY_DELAY is not None)


def _check_options(cls: type[Job]) -> None:
    for option in cls._required_options:
        if getattr(cls, option, None) is REQUIRED:
            raise MissingOptionError(cls.__name__, option)


def build(
    root: type[Job], default_tries: int = 3, default_retry_delay: float | Backoff = 1,
    default_timeout: float | None = None,
) -> JobGraph:
    """Walk ``root``'s DEPS and return the validated :class:`JobGraph`.

    Raises a :class:`~dojobber.errors.DefinitionError` subclass naming the
    job at fault for a non-iterable ``DEPS``, a non-job in ``DEPS``, two
    classes sharing a name, a cycle, bad ``TRIES`` / ``RETRY_DELAY`` or a
    ``REQUIRED`` option left unset.
    """
    if not (isinstance(root, type) and issubclass(root, Job)):
        raise NotAJobError(None, root)
    if default_timeout is not None and not _valid_timeout(default_timeout):
        raise ConfigurationError(
            "default_timeout", default_timeout, "give seconds > 0, or None for no limit"
        )
    with relaxed_gc(no_garbage=True):
        graph = _walk(root, default_tries, default_retry_delay)
    graph.timeouts = _timeouts(graph.classes, default_timeout)
    return graph


def _valid_timeout(value: object) -> bool:
    return (not isinstance(value, bool) and isinstance(value, numbers.Real)
            and math.isfinite(value) and float(value) > 0)


def _timeouts(classes: list[type[Job]], default: float | None) -> list[float | None] | None:
    """Each job's TIMEOUT (else ``default``), or None when there is none."""
    own = [cls.TIMEOUT for cls in classes]
    if default is None and not any(t is not None for t in own):
        return None
    out: list[float | None] = []
    fallback = None if default is None else float(default)
    for cls, value in zip(classes, own, strict=True):
        if value is None:
            out.append(fallback)
        elif type(value) is float and 0.0 < value < math.inf:  # (the usual case)
            out.append(value)
        elif _valid_timeout(value):
            out.append(float(value))
        else:
            raise InvalidTimeoutError(cls.__name__, value)
    return out


def _walk(root: type[Job], default_tries: int, default_delay: float | Backoff) -> JobGraph:
    # Validate the defaults once, so each job's own value is a fast check.
    count = tries_count(default_tries)
    if count is None:
        raise ConfigurationError(
            "default_tries", default_tries,
            "give a number >= 1 (a fraction counts as the next whole number of tries)",
        )
    default_backoff: Backoff | None = None
    if isinstance(default_delay, Backoff):
        default_backoff = None if default_delay.constant else default_delay
        default_delay = default_delay.initial
    elif isinstance(default_delay, bool) or not isinstance(default_delay, numbers.Real) \
            or not 0 <= default_delay <= MAX_RETRY_DELAY:
        raise ConfigurationError(
            "default_retry_delay", default_delay,
            "give a number of seconds from 0 to 1e9 or a dojobber.Backoff",
        )
    default_tries = count
    default_delay = float(default_delay)
    by_name: dict[str, type[Job]] = {}
    order: dict[type[Job], int] = {}
    classes: list[type[Job]] = []
    names: list[str] = []
    dep_lists: list[list[type[Job]]] = []
    # Jobs with an option of their own (TRIES, RETRY_DELAY, REQUIRED ones),
    # by index: checked after the walk; the rest take the defaults.
    special: list[int] = []
    on_path: dict[type[Job], int] = {}  # jobs on the stack: their depth
    setdefault = by_name.setdefault

    def named(cls: type[Job]) -> None:
        other = setdefault(cls.__name__, cls)
        if other is not cls:
            raise DuplicateJobNameError(cls.__name__, other, cls)

    # Each job is numbered when its dependencies are (number(), for leaves
    # and for jobs whose dependencies are done).  A job's name and whether
    # it has options of its own are read when it is first met, while its
    # class is in the CPU's caches, and kept on the stack: numbering it
    # later, after its dependencies (thousands of other classes, in a long
    # chain), then touches no class memory.
    def number(cls: type[Job], deps: list[type[Job]], name: str, own: object) -> None:
        """Give ``cls`` the next index (its dependencies have theirs)."""
        if own:
            special.append(len(classes))
        order[cls] = len(classes)
        classes.append(cls)
        names.append(name)
        dep_lists.append(deps)

    root_deps = _deps_of(root, getattr(root, "DEPS", ()))
    named(root)
    on_path[root] = 0
    # (the last field: whether the job has options of its own; any true value)
    stack: list[tuple[type[Job], list[type[Job]], Iterator[type[Job]], str, object]] = [
        (root, root_deps, iter(root_deps), root.__name__, _own_options(root))
    ]
    while stack:
        cls, deps, pending, name, own = stack[-1]
        for dep in pending:
            if dep in order:
                continue
            # An empty tuple or list (most leaves): no call, and no cycle
            # check (only jobs with dependencies are ever on the stack).
            raw = dep.DEPS
            if not raw and (type(raw) is tuple or type(raw) is list):
                dep_deps = _EMPTY
            else:
                if dep in on_path:
                    raise DependencyCycleError(
                        [entry[0].__name__ for entry in stack[on_path[dep]:]]
                    )
                dep_deps = _deps_of(dep, raw)
            dep_name = dep.__name__
            if setdefault(dep_name, dep) is not dep:
                named(dep)  # raises
            # _own_options(dep), inline (a call less per job); any true value
            dep_own = (dep._required_options or dep.TRIES is not None
                       or dep.RETRY_DELAY is not None)
            if not dep_deps:  # a leaf: done at once, no trip through the stack
                number(dep, dep_deps, dep_name, dep_own)
                continue
            on_path[dep] = len(stack)
            stack.append((dep, dep_deps, iter(dep_deps), dep_name, dep_own))
            break
        else:
            stack.pop()
            del on_path[cls]
            number(cls, deps, name, own)

    tries = [default_tries] * len(classes)
    delays = [default_delay] * len(classes)
    backoffs: dict[int, Backoff] = {}
    if default_backoff is not None:  # (rare: every job's waits grow)
        backoffs = dict.fromkeys(range(len(classes)), default_backoff)
    for i in special:
        cls = classes[i]
        if cls._required_options:
            _check_options(cls)
        tries[i] = _tries_of(cls, default_tries)
        if cls.RETRY_DELAY is not None:
            delay = _delay_of(cls, default_delay)
            if isinstance(delay, Backoff):
                backoffs[i] = delay
                delay = delay.initial
            else:
                backoffs.pop(i, None)
            delays[i] = delay
    dep_index: list[tuple[int, ...]] = [
        tuple(dict.fromkeys([order[d] for d in deps])) if deps else () for deps in dep_lists
    ]
    return JobGraph(
        root=root,
        classes=classes,
        names=names,
        deps=dep_index,
        tries=tries,
        delays=delays,
        backoffs=backoffs,
    )


