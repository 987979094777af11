"""What the PostgreSQL board and records share: telling a PostgreSQL URL
from a path, keeping its password out of messages, connecting with bounded
waits, retrying across a lost connection, owning the schema, and hearing
``NOTIFY`` (:class:`Listening`).

psycopg (the ``postgres`` extra) is imported only when a connection is made.

Ownership: a database holds dojobber's tables only next to the
``dojobber_meta`` table, which names each part (``board``, ``records``)
and its schema version.  Opening a database without it that already has
tables (in the schema in use) is refused and nothing is written; so is a
part whose version is newer than this dojobber knows.  Each part's
migrations run in one transaction under an advisory lock, so several hosts
opening a new database at once apply each step once.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "Listening",
    "NotOursError",
    "PostgresLink",
    "is_postgres_url",
    "redact_url",
    "redact_urls",
]

T = TypeVar("T")

#: Lock key for schema changes (any constant; "dojo" in ASCII).
_SCHEMA_LOCK = 0x646F6A6F

_URL = re.compile(r"\b(postgres(?:ql)?://)([^@/\s]*)@", re.IGNORECASE)
_PASSWORD_PARAM = re.compile(r"((?:^|[?&\s])password=)[^&\s]*", re.IGNORECASE)


def is_postgres_url(location: object) -> bool:
    """Whether ``location`` names a PostgreSQL database (``postgresql://`` or
    ``postgres://``) rather than a file."""
    return isinstance(location, str) and location.lower().startswith(
        ("postgresql://", "postgres://"))


def redact_url(url: str) -> str:
    """``url`` without its password (user info ``user:***``, a ``password=``
    query parameter ``***``): what messages and records may show."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = urlencode([(k, "***" if k.lower() == "password" else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_urls(text: str) -> str:
    """Every PostgreSQL URL's password in ``text`` masked (error messages
    from the driver may quote what they were given)."""
    text = _URL.sub(lambda m: m.group(1) + m.group(2).split(":", 1)[0]
                    + (":***@" if ":" in m.group(2) else "@"), text)
    return _PASSWORD_PARAM.sub(r"\1***", text)


#: URLs this process has connected to: a failure there is worth waiting out.
_REACHED: set[str] = set()


class NotOursError(Exception):
    """The database holds tables that dojobber did not create."""


class _Held:
    """One connection kept between calls, under a lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()


class PostgresLink(_Held):
    """One connection to ``url``, shared by the threads of a process under a
    lock, reconnected when it breaks.

    :meth:`run` calls a function with the connection inside one transaction;
    when the connection fails (server restarted, network cut) it reconnects
    and calls it again, for up to ``retry_for`` seconds, then raises
    ``error(message)``.  A server this process has never reached is not
    waited for: a wrong URL, password or host is reported at once.  Every
    wait is bounded: ``connect_timeout`` to connect, TCP keepalives and
    ``tcp_user_timeout`` to notice a dead peer.
    """

    def __init__(self, url: str, error: Callable[[str], Exception], *,
                 retry_for: float = 60.0, connect_timeout: float = 10.0) -> None:
        self.url = url
        self.where = redact_url(url)
        self.error = error
        self.retry_for = retry_for
        self.connect_timeout = connect_timeout
        super().__init__()

    def connect(self, autocommit: bool = True) -> psycopg.Connection[Any]:
        """A new connection (the caller owns it)."""
        import psycopg

        try:
            return psycopg.connect(
                self.url, autocommit=autocommit,
                connect_timeout=max(1, int(self.connect_timeout)),
                keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
                tcp_user_timeout=int(max(self.connect_timeout, 30) * 1000),
                application_name="dojobber",
            )
        except psycopg.Error as err:
            raise _ConnectError(redact_urls(str(err).strip())) from None

    def run(self, body: Callable[[psycopg.Connection[Any]], T]) -> T:
        import psycopg

        deadline = time.monotonic() + self.retry_for
        pause = 0.1
        while True:
            with self._lock:
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = self.connect()
                        _REACHED.add(self.url)
                    conn = self._conn
                    with conn.transaction():
                        return body(conn)
                except (psycopg.OperationalError, _ConnectError) as err:
                    reason = redact_urls(str(err).strip()) or type(err).__name__
                    self._drop()
                    # A server this process never reached: a wrong URL, password
                    # or host, said at once.  One it reached may be restarting.
                    if self.url not in _REACHED or time.monotonic() + pause > deadline:
                        raise self.error(f"{self.where}: {reason}") from None
                except psycopg.Error as err:
                    raise self.error(f"{self.where}: {redact_urls(str(err).strip())}") from None
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


    def ensure_schema(self, part: str, steps: Sequence[str], owned: Sequence[str]) -> int:
        """Bring ``part``'s tables to version ``len(steps)`` (``steps[i]``
        upgrades ``i`` to ``i + 1``); ``owned`` names the part's tables.
        Raises :class:`NotOursError` for a database that is not ours, and
        when the part is newer than ``len(steps)``."""

        def body(conn: psycopg.Connection[Any]) -> int:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            meta = conn.execute("SELECT to_regclass('dojobber_meta')").fetchone()
            if meta is None or meta[0] is None:
                tables = [r[0] for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                    " ORDER BY tablename LIMIT 5")]
                if tables:
                    raise NotOursError(
                        f"the database has tables dojobber did not create ({', '.join(tables)})"
                        " and no dojobber_meta table; give dojobber an empty database of its"
                        " own (or a schema: ?options=-csearch_path%3Dname); it was not changed")
                conn.execute("CREATE TABLE dojobber_meta (part text PRIMARY KEY,"
                             " version integer NOT NULL)")
            try:
                row = conn.execute("SELECT version FROM dojobber_meta WHERE part = %s",
                                   (part,)).fetchone()
            except Exception as err:
                raise NotOursError(
                    f"its dojobber_meta table is not dojobber's ({err}); it was not changed"
                ) from None
            version = 0 if row is None else int(row[0])
            if row is None:
                clash = [t for t in owned if conn.execute(
                    "SELECT to_regclass(%s)", (t,)).fetchone() not in (None, (None,))]
                if clash:
                    raise NotOursError(
                        f"it has tables named like dojobber's {part} ({', '.join(clash)}) that"
                        " dojobber_meta does not list; it was not changed")
            if version > len(steps):
                raise NotOursError(
                    f"its {part} schema is version {version}, newer than this dojobber"
                    f" knows ({len(steps)}); upgrade dojobber")
            for step in steps[version:]:
                conn.execute(step)
            if version < len(steps):
                conn.execute(
                    "INSERT INTO dojobber_meta VALUES (%s, %s) ON CONFLICT (part)"
                    " DO UPDATE SET version = EXCLUDED.version", (part, len(steps)))
            return len(steps)

        return self.run(body)


class Listening(_Held):
    r"""A connection of its own that ``LISTEN``\ s on ``channel``: made on
    first use, made again after it breaks.  The board's idle workers wait
    on it; the web view polls it to notice records written elsewhere."""

    def __init__(self, link: PostgresLink, channel: str) -> None:
        self.link = link
        self.channel = channel
        super().__init__()

    def heard(self, timeout: float = 0.0) -> bool:
        """Whether a ``NOTIFY`` came on the channel, waiting up to
        ``timeout`` seconds for the first (the others already there are
        taken too).  True also when the connection was just made: what was
        sent before is not known.  Raises when the connection cannot be
        made or breaks (the next call makes it again)."""
        with self._lock:
            conn = self._conn
            try:
                if conn is None or conn.closed:
                    self._conn = conn = self.link.connect(autocommit=True)
                    conn.execute(f"LISTEN {self.channel}")
                    return True
                if not any(True for _ in conn.notifies(timeout=timeout, stop_after=1)):
                    return False
                for _ in conn.notifies(timeout=0):  # what else arrived
                    pass
                return True
            except BaseException:
                self._drop()
                raise



class _ConnectError(Exception):
    """Connecting failed (may work on the next try)."""
