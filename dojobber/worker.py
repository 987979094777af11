"""The board worker (kept at this path; it lives in :mod:`dojobber.board.worker`)."""

from .board.worker import (
    Carried,
    WorkerOptions,
    WorkerSetupError,
    carry_out,
    check_options,
    run_worker,
)

__all__ = [
    "Carried", "WorkerOptions", "WorkerSetupError", "carry_out", "check_options", "run_worker",
]
