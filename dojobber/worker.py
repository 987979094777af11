"""The board worker (kept at this path; it lives in :mod:`dojobber.board.worker`)."""

from .board.worker import WorkerOptions, carry_out, run_worker

__all__ = ["WorkerOptions", "carry_out", "run_worker"]
