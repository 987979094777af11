"""The one exception hierarchy of dojobber.

Everything dojobber raises on purpose derives from :class:`DojobberError`.
Errors found while *defining* a graph (at :meth:`DoJobber.configure`) derive
from :class:`DefinitionError`; errors that happen while *running* one derive
from :class:`RunError`.  Each message names the job (class) at fault and says
what to do about it.

The whole tree, every error class the package defines (a test checks this
drawing against the classes, so it cannot go stale).  The second column
names the module (under ``dojobber.``) of each class defined outside this
one; the third, in parentheses, its other bases::

    DojobberError                                                    (Exception)
        DefinitionError                                              (ValueError)
            DepsNotIterableError                                     (TypeError)
                DepsIteratorError
            NotAJobError                                             (TypeError)
            DuplicateJobNameError
            DependencyCycleError
            InvalidTriesError
            InvalidRetryDelayError
            InvalidTimeoutError
            UnknownOptionError                                       (TypeError)
            MissingOptionError                                       (TypeError)
            InvalidSSHOptionError            contrib.ssh_errors      (ReconstructibleError, GiveUp)
            InvalidLibvirtOptionError        contrib.libvirt_errors  (ReconstructibleError, GiveUp)
        ConfigurationError                                           (ValueError)
        UnknownJobError                                              (KeyError)
        NotConfiguredError
        RunError
            NoActError                                               (RuntimeError)
            PlanError
            CleanupError
            JobNotSendableError
            WorkerLostError
            JobTimeoutError
            RemoteError
            LockHeldError                    lock
            NotConvergedError                contrib._runscope       (ReconstructibleError)
            SSHJobError                      contrib.ssh_errors      (ReconstructibleError)
                NoHostError                  contrib.ssh_errors
                SSHConnectError              contrib.ssh_errors
                SSHAuthError                 contrib.ssh_errors      (GiveUp)
                HostKeyUnknownError          contrib.ssh_errors
                HostKeyChangedError          contrib.ssh_errors      (GiveUp)
                CommandFailedError           contrib.ssh_errors
                CommandTimeoutError          contrib.ssh_errors
                CheckCommandError            contrib.ssh_errors
                ConsoleError                 contrib.ssh_errors
                    ConsoleTimeoutError      contrib.ssh_errors
                    ConsoleLoginError        contrib.ssh_errors
                    ConsoleCommandError      contrib.ssh_errors
                SeedError                    contrib.ssh_errors
            LibvirtJobError                  contrib.libvirt_errors  (ReconstructibleError)
                LibvirtCallError             contrib.libvirt_errors
                DomainDriftError             contrib.libvirt_errors
                DomainNotFoundError          contrib.libvirt_errors
                AddressTimeoutError          contrib.libvirt_errors
                DiskError                    contrib.libvirt_errors
            ContribError                     contrib.errors
                TransportError               contrib.errors
                HTTPStatusError              contrib.errors
                    ObsAuthError             contrib.errors          (GiveUp)
                    UnknownResourceError     contrib.errors          (GiveUp)
                    ServerError              contrib.errors
                ObsError                     contrib.errors
                    RepositoryNotFoundError  contrib.errors          (GiveUp)
                    RepositoryNotReadyError  contrib.errors
                    BuildNotReadyError       contrib.errors
                    BuildFailedError         contrib.errors
                    ImageNotFoundError       contrib.errors
                    AmbiguousImageError      contrib.errors          (GiveUp)
                    CredentialsError         contrib.errors          (GiveUp)
                DownloadError                contrib.errors
                    NoUrlError               contrib.errors
                    NotDownloadedError       contrib.errors
                    RemoteChangedError       contrib.errors
                    DownloadInterruptedError contrib.errors
                    SizeMismatchError        contrib.errors
                    ChecksumMismatchError    contrib.errors
        BoardError                           board.base
            UnknownRequestError              board.base              (KeyError)
        WorkerSetupError                     board.worker
        TargetError                          loader
        RecordsError                         records.store
        RenderError                          render._errors
            UnsupportedFormatError           render._errors          (ValueError)
            GraphvizUnavailableError         render._errors
                GraphvizPackageMissingError  render._errors          (ImportError)
                GraphvizNotFoundError        render._errors
            LayoutTimeoutError               render._errors          (TimeoutError)
            GraphvizFailedError              render._errors
            NoImageViewerError               render._errors
        GraphOutputError                     cli.graph
        ServeError                           web._options
        ExecutorStartError                   cluster                 (RuntimeError)

Not in the tree (other exception classes of the package, named here so
that the test finds them deliberate):

- ``errors.GiveUp`` (this module): raised by a job, not by dojobber, to say
  that retrying cannot help (so it is no DojobberError);
- ``_postgres.NotOursError``: a PostgreSQL database holds tables dojobber
  did not make (the board and records backends turn it into their
  ``BoardError`` / ``RecordsError``), and ``_postgres._ConnectError``, a
  failed connection that may work on the next try;
- ``contrib._runscope.ReconstructibleError``: a mixin (listed above among
  the bases) whose subclasses pickle by being made again from their
  arguments, to and from executor processes;
- ``cli._rounds.RestartRequested`` (a ``BaseException``, so that nothing
  on its way up mistakes it for an error): SIGHUP in the agent of a script
  run through ``main(Root)``, which the command line answers by starting
  the script again; and ``cli._rounds.ScriptReloadError``, the script as it
  is now does not load (the agent keeps its jobs);
- ``_timeout._AlarmError`` (a ``BaseException``, so that a job's
  ``except Exception`` does not swallow it): raised in job code by the timer
  signal that ends an attempt past its TIMEOUT in a process pool;
- ``web._data.BadParameterError`` (``ValueError``), ``web._data.NotFoundError``
  (``LookupError``) and ``web._svg.PictureUnavailableError``
  (``RuntimeError``): the web view's, turned into HTTP answers;
- ``_sqlite_files.ForeignDatabaseError``: a SQLite file is not a database
  of the kind asked for (records, board); the backends turn it into their
  ``RecordsError`` / ``BoardError``, and nothing in the file is changed;
- ``records._graph.StoredError``: stands for a job's exception in a stored
  run (its text only);
- ``records._schema.SchemaTooNewError`` (``sqlite3.DatabaseError``): the
  records database was written by a newer dojobber;
- ``cli._base.Failure`` (``click.ClickException``) and its ``Locked``:
  what the CLI prints before it exits with status 2 or 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._describe import exception_text

__all__ = [
    "CleanupError",
    "ConfigurationError",
    "DefinitionError",
    "DependencyCycleError",
    "DepsIteratorError",
    "DepsNotIterableError",
    "DojobberError",
    "DuplicateJobNameError",
    "GiveUp",
    "InvalidRetryDelayError",
    "InvalidTimeoutError",
    "InvalidTriesError",
    "JobNotSendableError",
    "JobTimeoutError",
    "MissingOptionError",
    "NoActError",
    "NotAJobError",
    "NotConfiguredError",
    "RemoteError",
    "RunError",
    "UnknownJobError",
    "UnknownOptionError",
    "WorkerLostError",
    "gave_up",
]


class DojobberError(Exception):
    """Base class of every error dojobber raises on purpose.

    Every one pickles and unpickles to itself (same class, message and
    attributes), so that it crosses to and from process-pool and dask
    workers intact, whatever its ``__init__`` takes: it is rebuilt from its
    ``args`` and attributes without calling ``__init__`` again.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), self.args, self.__dict__))


def _rebuild_error(
    cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]
) -> BaseException:
    """Unpickle a :class:`DojobberError` (see its ``__reduce__``)."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class DefinitionError(DojobberError, ValueError):
    """The job graph or a job class is defined wrongly (found at configure)."""


class DepsNotIterableError(DefinitionError, TypeError):
    """A job's ``DEPS`` is not iterable (a lone class instead of a list)."""

    def __init__(self, job: str, deps: object) -> None:
        self.job = job
        self.deps = deps
        super().__init__(
            f"{job}.DEPS must be a list or tuple of Job classes, got {deps!r}; "
            f"write DEPS = [{getattr(deps, '__name__', repr(deps))}] "
            "for a single dependency"
        )


class DepsIteratorError(DepsNotIterableError):
    """A job's ``DEPS`` is a one-shot iterator (a generator): it would be
    read up by the first ``configure()`` and be empty for the next."""

    def __init__(self, job: str, deps: object) -> None:
        self.job = job
        self.deps = deps
        DefinitionError.__init__(
            self,
            f"{job}.DEPS is a one-shot iterator ({type(deps).__name__}), which only the "
            "first configure() could read; give a list or tuple, e.g. "
            f"DEPS = list(...) or DEPS = [{job}Dep, ...]",
        )


class NotAJobError(DefinitionError, TypeError):
    """Something that is not a Job subclass appears in ``DEPS`` or as root."""

    def __init__(self, job: str | None, item: object) -> None:
        self.job = job
        self.item = item
        where = f"{job}.DEPS lists" if job else "the root job is"
        super().__init__(
            f"{where} {item!r}, which is not a subclass of dojobber.Job; "
            "list job classes (not instances or names)"
        )


class DuplicateJobNameError(DefinitionError):
    """Two different classes with the same ``__name__`` are in one graph."""

    def __init__(self, name: str, first: type, second: type) -> None:
        self.name = name
        self.classes = (first, second)
        super().__init__(
            f"two different job classes are named {name!r}: "
            f"{first.__module__}.{first.__qualname__} and "
            f"{second.__module__}.{second.__qualname__}; job names must be "
            "unique in a graph, rename one (or use Job.variant(name, ...))"
        )


class DependencyCycleError(DefinitionError):
    """The ``DEPS`` of some jobs form a cycle."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        shown = " -> ".join([*self.cycle, self.cycle[0]])
        super().__init__(
            f"dependency cycle: {shown} (each job lists the next in DEPS); "
            "remove one of these dependencies"
        )


class InvalidTriesError(DefinitionError):
    """``TRIES`` (or ``default_tries``) is below 1, not finite or not a number."""

    def __init__(self, job: str, tries: object) -> None:
        self.job = job
        self.tries = tries
        super().__init__(
            f"{job}: TRIES is {tries!r}; it must be a number >= 1 (a fraction "
            "counts as the next whole number of tries; set it on the class, or "
            "default_tries in configure())"
        )


class InvalidRetryDelayError(DefinitionError):
    """``RETRY_DELAY`` (or ``default_retry_delay``) is negative, no number,
    or not finite / larger than :data:`dojobber.graph.MAX_RETRY_DELAY`."""

    def __init__(self, job: str, delay: object) -> None:
        self.job = job
        self.delay = delay
        super().__init__(
            f"{job}: RETRY_DELAY is {delay!r}; it must be a number of "
            "seconds from 0 to 1e9 (set it on the class, or default_retry_delay in "
            "configure())"
        )


class InvalidTimeoutError(DefinitionError):
    """``TIMEOUT`` (or ``default_timeout``) is not a number of seconds > 0."""

    def __init__(self, job: str, timeout: object) -> None:
        self.job = job
        self.timeout = timeout
        super().__init__(
            f"{job}: TIMEOUT is {timeout!r}; it must be a number of seconds > 0, or "
            "None for no limit (set it on the class, with variant(), or default_timeout "
            "in configure())"
        )


class UnknownOptionError(DefinitionError, TypeError):
    """``Job.variant()`` was given an option the job class does not have."""

    def __init__(self, job: str, option: str, known: Sequence[str]) -> None:
        self.job = job
        self.option = option
        hint = f"; its options are: {', '.join(known)}" if known else ""
        super().__init__(f"{job} has no option {option!r}{hint}")


class MissingOptionError(DefinitionError, TypeError):
    """A job in the graph still has an option whose value is ``REQUIRED``."""

    def __init__(self, job: str, option: str) -> None:
        self.job = job
        self.option = option
        super().__init__(
            f"{job}: option {option!r} has no value; make the job with "
            f"{job}.variant(..., {option}=...) or set it in a subclass"
        )


class ConfigurationError(DojobberError, ValueError):
    """An option given to ``configure()`` (or the CLI) has a wrong value."""

    def __init__(self, option: str, value: object, expected: str) -> None:
        self.option = option
        self.value = value
        super().__init__(f"configure(): {option}={value!r} is not valid; {expected}")


class UnknownJobError(DojobberError, KeyError):
    """A job name was asked for that is not in the configured graph."""

    def __init__(self, name: str, root: str) -> None:
        self.name = name
        super().__init__(name)
        self._message = (
            f"no job named {name!r} in the graph of {root}; "
            "pass a job class or name that the root depends on"
        )

    def __str__(self) -> str:
        return self._message


class NotConfiguredError(DojobberError):
    """A DoJobber was used before :meth:`DoJobber.configure`."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}() needs a graph: call configure(RootJob) first")


class RunError(DojobberError):
    """Base class of errors raised while running a graph."""


class GiveUp(Exception):  # noqa: N818 (a verb: "raise GiveUp(...)")
    """Retrying will not fix this: a person must act.

    Raise it (or an exception class that mixes it in:
    ``class BadPassword(GiveUp, PermissionError)``) from ``Check``, ``Run``
    or a job's constructor for a failure that no later try can cure: wrong
    credentials, an ambiguous image name, a missing required file, invalid
    options.  The engine does not try such a job again within the run, and
    :meth:`DoJobber.converge` stops after the round with the verdict
    ``gave up`` instead of waiting for another round.  Do not raise it for
    what time may fix (connection refused, a build still running, no
    address yet).

    It derives from :class:`Exception` only (not :class:`DojobberError`),
    so that any exception of yours can mix it in.
    """


class NoActError(RunError, RuntimeError):
    """A :class:`RunonlyJob` cannot be checked in ``no_act`` mode.

    A :class:`RuntimeError` whose message is upstream DoJobber's own
    (``Runonly node check intentionally fails first time.``), so scripts
    written for upstream see the same exception; :attr:`job` names the job
    and :attr:`reason` says why in dojobber's words.
    """

    #: The message upstream DoJobber 0.6.3 gives this failure.
    UPSTREAM_MESSAGE = "Runonly node check intentionally fails first time."

    def __init__(self, job: str) -> None:
        self.job = job
        self.reason = (
            f"{job} is a RunonlyJob: it has no Check, so in no_act mode it "
            "fails without running"
        )
        super().__init__(self.UPSTREAM_MESSAGE)


class PlanError(RunError):
    """Check mode: a job's ``Plan()`` raised, or returned something other
    than a text (str) or None.  The job could not be planned: in a dry run
    it is FAILED (not WOULD_RUN), and the run's outcome is
    ``not_converged``.  ``reason`` says what went wrong; the exception
    ``Plan()`` raised, if any, is the ``__cause__``."""

    def __init__(self, job: str, reason: str) -> None:
        self.job = job
        self.reason = reason
        super().__init__(
            f"{job}: its Plan() {reason}; a Plan must only say (as a str, or None) what "
            "Run would do, without changing anything: fix the Plan"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.job, self.reason))


class CleanupError(RunError):
    """One or more ``Cleanup()`` methods raised; every cleanup still ran."""

    def __init__(self, failures: Sequence[tuple[str, BaseException]]) -> None:
        self.failures = list(failures)
        names = ", ".join(f"{n} ({exception_text(e)})" for n, e in self.failures)
        super().__init__(f"Cleanup failed for {len(self.failures)} job(s): {names}")


class JobNotSendableError(RunError):
    """An attempt could not be sent to (or back from) the executor."""

    def __init__(self, job: str, cause: BaseException) -> None:
        self.job = job
        self.cause = cause
        super().__init__(
            f"{job}: its attempt could not be sent to or from the executor "
            f"({exception_text(cause)}); attempts that run in another "
            "process must pickle: define the job at module level in a module "
            "importable where attempts run (on a dask cluster: the scheduler and "
            "the workers; dask's cloudpickle sends jobs made in __main__ by "
            "value), and make its args, global_storage values and result "
            "picklable"
        )


class WorkerLostError(RunError):
    """A job's attempts were lost with their worker too many times."""

    def __init__(self, job: str, lost: int, cause: BaseException) -> None:
        self.job = job
        self.lost = lost
        super().__init__(
            f"{job}: the worker running it died"
            + (f" {lost} times" if lost > 1 else "")
            + f" ({exception_text(cause)}); does the job crash its process?"
        )


class JobTimeoutError(RunError):
    """An attempt of a job ran past the job's ``TIMEOUT``: a failed try.

    In this process (inline, threads) the attempt is abandoned where it
    stands: its thread goes on until the job's code returns (a daemon
    thread: the interpreter's exit does not wait for it), but the run
    does not wait for it and the job is not tried again while it runs.  In
    another process (process pool, dask) the attempt is stopped.
    """

    def __init__(self, job: str, timeout: float, still_running: bool = False,
                 doing: str = "tried") -> None:
        self.job = job
        self.timeout = timeout
        self.still_running = still_running
        self.doing = doing
        if still_running:
            text = (f"{job}: not {doing}: its attempt that timed out (TIMEOUT={timeout:g}s) "
                    f"still runs; it is {doing} again once that attempt has ended")
        else:
            text = (f"{job}: its attempt did not finish within TIMEOUT={timeout:g}s; "
                    "raise TIMEOUT if the job needs longer, or find what it waits for")
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.job, self.timeout, self.still_running, self.doing))


class RemoteError(RunError):
    """Stands for an exception raised in another process that could not be
    sent back as itself; keeps its type name, message and traceback text."""

    def __init__(self, original: BaseException | str, traceback: str | None = None) -> None:
        if isinstance(original, BaseException):
            self.type_name = f"{type(original).__module__}.{type(original).__qualname__}"
            self.message = str(original)
        else:
            self.type_name, self.message = original, ""
        self.remote_traceback = traceback
        #: The original was a :class:`GiveUp` (retrying will not fix it).
        self.gave_up = isinstance(original, GiveUp)
        super().__init__(f"{self.type_name}: {self.message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_remote_error,
                (self.type_name, self.message, self.remote_traceback, self.gave_up))


def _remote_error(
    type_name: str, message: str, tb: str | None, gave_up: bool = False
) -> RemoteError:
    err = RemoteError(type_name, tb)
    err.message = message
    err.args = (f"{type_name}: {message}",)
    err.gave_up = gave_up
    return err


def gave_up(error: BaseException | None) -> bool:
    """Whether ``error`` means "retrying will not fix this": a
    :class:`GiveUp`, or one raised in another process that came back as a
    :class:`RemoteError`."""
    return isinstance(error, GiveUp) or (isinstance(error, RemoteError) and error.gave_up)
