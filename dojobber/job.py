"""Job classes: one small class per fact that should be true.

A job says what it needs (``DEPS``), how to tell whether its fact already holds
(``Check``: returns when it does, raises when it does not), and how to make it
hold (``Run``).  The engine runs an *attempt* as Check -> Run -> Check again.
"""

from __future__ import annotations

import copyreg
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from ._describe import mask_urls
from .errors import UnknownOptionError

if TYPE_CHECKING:
    from .backoff import Backoff

__all__ = ["REQUIRED", "DummyJob", "Job", "JobMeta", "RunonlyJob"]

_J = TypeVar("_J", bound="type[Job]")


class _Required:
    """Marker for a job option that a :meth:`Job.variant` must set."""

    _instance: ClassVar[_Required | None] = None

    def __new__(cls) -> _Required:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self) -> str:
        return "REQUIRED"


#: Default of a job option that has no sensible default.  A graph that holds
#: a job whose option is still ``REQUIRED`` is refused at configure time with
#: a :class:`~dojobber.errors.MissingOptionError` naming job and option.
REQUIRED: Any = _Required()

# Attributes the engine sets on instances; variant() must not override them.
_ENGINE_ATTRS = frozenset({"storage", "global_storage"})


class JobMeta(type):
    """Metaclass of :class:`Job`: lets a variant pickle as its recipe.

    A class made by :meth:`Job.variant` is not reachable by name in its
    module, so the standard pickler cannot send it to another process; this
    metaclass's reducer (registered with :mod:`copyreg`) sends it as
    ``(base class, name, options)`` instead.  Other job classes pickle by
    name as usual.
    """


def _reduce_job_class(cls: JobMeta) -> str | tuple[Any, ...]:
    base = cls.__dict__.get("_variant_of")
    if base is None:
        return cls.__qualname__  # by name, like any class
    return (_rebuild_variant, (base, cls.__name__, cls.__dict__["_variant_options"]))


_rebuilt: dict[tuple[type[Job], str], type[Job]] = {}


def _rebuild_variant(base: type[Job], name: str, options: dict[str, Any]) -> type[Job]:
    """Unpickle a variant: make it again (once per process)."""
    made = _rebuilt.get((base, name))
    if made is None or made._variant_options != options:
        made = _rebuilt[(base, name)] = base.variant(name, **options)
    return made


copyreg.pickle(JobMeta, _reduce_job_class)


class Job(metaclass=JobMeta):
    """Base class of every job.

    Subclasses set, all optional:

    ``DEPS``
        Job classes that must succeed before this one is tried (a list or a
        tuple; read when the graph is configured).
    ``TRIES``
        How many attempts this job gets; ``None`` uses ``default_tries``.
    ``RETRY_DELAY``
        Minimum seconds between two attempts of this job, or a
        :class:`~dojobber.Backoff` whose waits grow from try to try;
        ``None`` uses ``default_retry_delay``.
    ``TIMEOUT``
        Longest one attempt (Check, Run, recheck) may take, in seconds;
        past it the attempt is a failed try with
        :class:`~dojobber.JobTimeoutError` (see ``docs/converge.rst``).
        ``None`` uses ``default_timeout`` (no limit by default).

    and implement ``Check(*args, **kwargs)`` (return = the fact holds, its
    return value is the job's result; raise = it does not), ``Run(*args,
    **kwargs)`` (make it hold; its exception is ignored, the recheck decides)
    and optionally ``Cleanup()``, called once per instance after the run,
    and ``Plan(*args, **kwargs)``: in check mode (``no_act``), after the
    first Check raised, it returns a short text (or None) saying what Run
    would do (see ``docs/check_mode.rst``); it must change nothing.

    Each attempt works on a new instance made with ``cls()``;
    ``self.storage`` is a fresh dict per attempt and ``self.global_storage``
    one dict shared by all jobs for the whole ``checknrun()``.
    """

    DEPS: ClassVar[Iterable[type[Job]]] = ()
    TRIES: ClassVar[int | None] = None
    RETRY_DELAY: ClassVar[float | Backoff | None] = None
    TIMEOUT: ClassVar[float | None] = None

    # Set by the engine on each instance before Check.
    storage: dict[str, Any] | None = None
    global_storage: dict[str, Any] | None = None

    # Upstream-compatible attempt state, for advanced Check/Run methods.
    _check_phase: str | None = None
    _check_results: Any = None
    _check_exception: BaseException | None = None
    _run_results: Any = None
    _run_exception: BaseException | None = None
    _recheck_results: Any = None
    _recheck_exception: BaseException | None = None
    _no_act: bool = False

    # Options whose value is REQUIRED somewhere in the class hierarchy.
    _required_options: ClassVar[tuple[str, ...]] = ()
    # For variants: the class and options they were made from.
    _variant_of: ClassVar[type[Job] | None] = None
    _variant_options: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        required = [key for key, value in vars(cls).items() if value is REQUIRED]
        if required:
            cls._required_options = tuple(sorted({*cls._required_options, *required}))

    def Check(self, *args: Any, **kwargs: Any) -> Any:
        """Return (any value: the job's result) when the fact holds; raise
        when it does not.  Override it."""
        raise NotImplementedError(f"{type(self).__name__} defines no Check()")

    def Run(self, *args: Any, **kwargs: Any) -> Any:
        """Make the fact hold; the recheck decides whether it worked."""
        raise NotImplementedError(f"{type(self).__name__} defines no Run()")

    def _set_storage(
        self, storage: dict[str, Any], global_storage: dict[str, Any]
    ) -> None:
        """Set both storages (upstream-compatible helper)."""
        self.storage = storage
        self.global_storage = global_storage

    @classmethod
    def options(cls) -> dict[str, Any]:
        """The job's options: its public, non-callable class attributes."""
        found: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if klass is object:
                continue
            for key, value in vars(klass).items():
                if key.startswith("_") or key in _ENGINE_ATTRS:
                    continue
                if callable(value) or isinstance(value, (classmethod, staticmethod, property)):
                    found.pop(key, None)
                    continue
                found[key] = value
        return {key: getattr(cls, key) for key in found}

    @classmethod
    def variant(cls: _J, name: str | None = None, /, **options: Any) -> _J:
        """Make a distinct job from this one with other option values.

        ``Invite.variant("Invite ann", EMAIL="ann@example.org")`` returns a new
        subclass named ``"Invite ann"`` whose ``EMAIL`` is set; use it in
        ``DEPS`` like any job.  Options are class attributes the job already
        has (``DEPS``, ``TRIES`` and ``RETRY_DELAY`` included); an unknown one
        raises :class:`~dojobber.errors.UnknownOptionError`.  Without a
        name, one is made from the class name and the options.
        """
        known = cls.options()
        for key in options:
            if key not in known:
                raise UnknownOptionError(cls.__name__, key, sorted(known))
        if name is None:
            shown = ", ".join(f"{key}={value!r}" for key, value in options.items())
            name = mask_urls(f"{cls.__name__}({shown})")  # no URL password in a name
        namespace: dict[str, Any] = dict(options)
        namespace["__module__"] = cls.__module__
        namespace["__qualname__"] = name
        namespace["__doc__"] = cls.__doc__
        namespace["_variant_of"] = cls
        namespace["_variant_options"] = dict(options)
        metaclass: Any = type(cls)
        return cast(_J, metaclass(name, (cls,), namespace))


class RunonlyJob(Job):
    """A job that only has a Run: it runs once, and passes if Run returned.

    Do not define ``Check``.  The first Check always fails, so Run runs; the
    recheck returns Run's result or raises Run's exception.  In ``no_act``
    mode it is WOULD_RUN without running (its exception, in upstream's
    dicts, is :class:`~dojobber.errors.NoActError`).
    """

    def Check(self, *args: Any, **kwargs: Any) -> Any:
        """Fail before Run; after it, mirror Run's outcome."""
        if self._check_phase == "check":
            if self._no_act:
                from .errors import NoActError

                raise NoActError(type(self).__name__)
            raise RuntimeError("Runonly node check intentionally fails first time.")
        if self._run_exception is not None:
            raise self._run_exception
        return self._run_results


class DummyJob(Job):
    """A job that always passes; useful to group dependencies under one name."""

    def Check(self, *args: Any, **kwargs: Any) -> None:
        """Always pass."""

    def Run(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to do."""
