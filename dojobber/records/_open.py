"""Opening records with the backend that fits the location: a
``postgresql://`` URL is PostgreSQL (:mod:`~dojobber.records.postgres`,
imported only then), anything else a SQLite file."""

from __future__ import annotations

import os

from .._postgres import is_postgres_url
from .sqlite import RecordStore
from .store import ENV_VAR, RecordsWriter, Store, default_path

__all__ = ["location", "open_store", "open_writer"]


def location(where: str | os.PathLike[str] | None = None) -> str:
    """``where`` (a path or URL), else ``$DOJOBBER_RECORDS``, else the per-user file."""
    if where is None:
        env = os.environ.get(ENV_VAR, "")
        return env if is_postgres_url(env) else default_path()
    text = os.fspath(where)
    return text if is_postgres_url(text) else os.path.expanduser(text)


def open_store(where: str | os.PathLike[str] | None = None) -> Store:
    """The records at ``where`` (a file path or a ``postgresql://`` URL;
    default :func:`~dojobber.records.default_path`) opened for reading."""
    path = location(where)
    if is_postgres_url(path):
        from .postgres import PostgresRecordStore

        return PostgresRecordStore(path)
    return RecordStore(path)


def open_writer(where: str | os.PathLike[str] | None = None) -> RecordsWriter:
    """The records at ``where`` opened for the records listener to write."""
    path = location(where)
    if is_postgres_url(path):
        from .postgres import PostgresRecordStore

        return PostgresRecordStore(path)
    return RecordStore(path, foreign_keys=False)
