"""dojobber: idempotent check/run dependency graphs.

Write one small :class:`Job` per fact that should hold (``DEPS``, ``Check``,
``Run``, optional ``Cleanup``), hand the root to :class:`DoJobber`, and rerun
until everything converges.  API-compatible with DoJobber 0.6.3.
"""

from __future__ import annotations

from ._context import report_progress
from ._main import main
from ._version import __version__
from .backoff import Backoff
from .converge import ConvergeResult, Verdict
from .dojobber import DoJobber
from .errors import (
    CleanupError,
    ConfigurationError,
    DefinitionError,
    DependencyCycleError,
    DepsIteratorError,
    DepsNotIterableError,
    DojobberError,
    DuplicateJobNameError,
    GiveUp,
    InvalidRetryDelayError,
    InvalidTimeoutError,
    InvalidTriesError,
    JobNotSendableError,
    JobTimeoutError,
    MissingOptionError,
    NoActError,
    NotAJobError,
    NotConfiguredError,
    PlanError,
    RemoteError,
    RunError,
    UnknownJobError,
    UnknownOptionError,
    WorkerLostError,
    gave_up,
)
from .events import Listener, RoundInfo, RunInfo
from .graph import JobGraph
from .job import REQUIRED, DummyJob, Job, RunonlyJob
from .results import JobResult, JobStatus, Phase, RunOutcome, RunResult

__all__ = [
    "REQUIRED",
    "Backoff",
    "CleanupError",
    "ConfigurationError",
    "ConvergeResult",
    "DefinitionError",
    "DependencyCycleError",
    "DepsIteratorError",
    "DepsNotIterableError",
    "DoJobber",
    "DojobberError",
    "DummyJob",
    "DuplicateJobNameError",
    "GiveUp",
    "InvalidRetryDelayError",
    "InvalidTimeoutError",
    "InvalidTriesError",
    "Job",
    "JobGraph",
    "JobNotSendableError",
    "JobResult",
    "JobStatus",
    "JobTimeoutError",
    "Listener",
    "MissingOptionError",
    "NoActError",
    "NotAJobError",
    "NotConfiguredError",
    "Phase",
    "PlanError",
    "RemoteError",
    "RoundInfo",
    "RunError",
    "RunInfo",
    "RunOutcome",
    "RunResult",
    "RunonlyJob",
    "UnknownJobError",
    "UnknownOptionError",
    "Verdict",
    "WorkerLostError",
    "__version__",
    "gave_up",
    "main",
    "report_progress",
]
