"""Run records: every run, every job, every log line, kept in a database.

``configure(records=path)`` (or ``listeners=[RecordsListener(path, ...)]``)
writes each run into a database; :func:`open_store` (or :class:`RecordStore`
for SQLite) reads it back, and ``dojobber history`` / ``dojobber show``
print it.  The command line records by default at :func:`default_path`
(``$DOJOBBER_RECORDS``, else ``$XDG_STATE_HOME/dojobber/records.sqlite3``).

The package: :mod:`~dojobber.records.listener` writes a run while it goes
on, :mod:`~dojobber.records.store` holds what every backend shares (the
stored forms and the reading interface :class:`Store`),
:mod:`~dojobber.records.sqlite` and :mod:`~dojobber.records.postgres`
are the backends (the SQL they share is in ``_sql.py``),
:mod:`~dojobber.records.masking` keeps secrets out, and
:func:`stored_run` turns a stored run back into a graph and a result.
"""

from __future__ import annotations

from ._graph import StoredError, stored_run
from ._open import open_store, open_writer
from .listener import RecordsListener
from .masking import MASK, SECRET_NAMES, mask_argv, mask_secrets, mask_urls
from .sqlite import RecordStore
from .store import (
    ENV_VAR,
    OUTCOMES,
    Batch,
    Browsable,
    JobRecord,
    LogLine,
    RecordsError,
    RecordsWriter,
    RunEnd,
    RunRecord,
    RunRow,
    Store,
    default_path,
)

__all__ = [
    "ENV_VAR",
    "MASK",
    "OUTCOMES",
    "SECRET_NAMES",
    "Batch",
    "Browsable",
    "JobRecord",
    "LogLine",
    "RecordStore",
    "RecordsError",
    "RecordsListener",
    "RecordsWriter",
    "RunEnd",
    "RunRecord",
    "RunRow",
    "Store",
    "StoredError",
    "default_path",
    "mask_argv",
    "mask_secrets",
    "mask_urls",
    "open_store",
    "open_writer",
    "stored_run",
]
