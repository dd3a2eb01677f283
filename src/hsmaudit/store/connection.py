"""`StoreConnections`: the SQLite connections of one store, their pragmas and the schema check.

Where it sits: `EventStore` (store/database.py) owns one of these; the writes (store/writes.py)
use its writer, lock and transactions, the reads use `reader()`. Durability lives here: WAL mode
with `synchronous=FULL` fsyncs the log at every commit, and a background thread checkpoints the
WAL into the database file off the commit path.

One writer at a time (a lock; SQLite allows one anyway), any number of readers on their own
per-thread connections, which WAL lets run beside the writer.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Literal

from hsmaudit.store.errors import StoreDataError, StoreError, StoreSchemaError
from hsmaudit.store.schema import APPLICATION_ID, EVENT_COLUMNS, SCHEMA, SCHEMA_VERSION

Synchronous = Literal["FULL", "NORMAL"]

_CHECKPOINT_INTERVAL: Final = 0.5
_WAL_RESTART_PAGES: Final = 65_536  # 256 MiB of 4 KiB pages


def open_connection(path: str, synchronous: Synchronous) -> sqlite3.Connection:
    """A connection with the store's pragmas; an unopenable path is a `StoreError`."""
    try:
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        connection.execute("PRAGMA busy_timeout = 30000")
        if path != ":memory:":
            connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        # 64 MiB page cache: the unique event_id index is written at random places.
        connection.execute("PRAGMA cache_size = -65536")
        connection.execute("PRAGMA foreign_keys = OFF")
    except sqlite3.Error as error:
        raise StoreError(f"cannot open store {path}: {error}") from error
    return connection


class StoreConnections:
    """The writer (with its lock), per-thread readers and the checkpointer of the store at `path`.

    Opening checks the file is an hsmaudit store of a schema this version can read, then creates
    or extends the schema (store/schema.py) before anything is written.
    """

    def __init__(self, path: str, *, synchronous: Synchronous = "FULL") -> None:
        self.path = path
        self._synchronous: Synchronous = synchronous
        self.write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.writer = open_connection(self.path, self._synchronous)
        self._create_schema()
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        if self.path != ":memory:":
            # Checkpoints copy the WAL into the database file and fsync it. Run on the commit
            # path (SQLite's default) they delay the acknowledgement of whichever request trips
            # them; a background thread does the same work off that path. Commits stay durable:
            # the WAL itself is fsynced at every commit (synchronous=FULL).
            self.writer.execute("PRAGMA wal_autocheckpoint = 0")
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="hsmaudit-checkpoint", daemon=True
            )
            self._checkpointer.start()

    @property
    def closed(self) -> bool:
        """True once `close` ran: writes and new reads are refused."""
        return self._closed

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection (the writer's, for `:memory:`, which cannot be shared)."""
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
        if self.path == ":memory:":
            return self.writer
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = open_connection(self.path, self._synchronous)
            connection.execute("PRAGMA query_only = ON")
            self._local.connection = connection
            with self._readers_lock:
                self._readers.append(connection)
        return connection

    def _create_schema(self) -> None:
        with self.write_lock:
            try:
                application_id = self.writer.execute("PRAGMA application_id").fetchone()[0]
                version = self.writer.execute("PRAGMA user_version").fetchone()[0]
                tables = {
                    row[0]
                    for row in self.writer.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                }
            except sqlite3.DatabaseError as error:
                raise StoreSchemaError(f"{self.path} is not an SQLite database: {error}") from error
            if tables and application_id != APPLICATION_ID:
                raise StoreSchemaError(
                    f"{self.path} is an SQLite file but not an hsmaudit store; give another --db path"
                )
            if version > SCHEMA_VERSION:
                raise StoreSchemaError(
                    f"{self.path} has store schema {version}, newer than this hsmaudit's "
                    f"({SCHEMA_VERSION}); upgrade hsmaudit"
                )
            with self.transaction(f"cannot create the schema in {self.path}"):
                for statement in SCHEMA:
                    self.writer.execute(statement)
                # Fields are added to HsmEvent freely (contracts.md §1): a store made by an older
                # hsmaudit gets their columns, empty (NULL) for the events it already holds.
                present = {row[1] for row in self.writer.execute("PRAGMA table_info(events)")}
                for name, sql_type in EVENT_COLUMNS:
                    if name not in present:
                        self.writer.execute(f"ALTER TABLE events ADD COLUMN {name} {sql_type}")
                self.writer.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self.writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def transaction(self, failure: str) -> Iterator[None]:
        """`BEGIN IMMEDIATE` … `COMMIT` on the writer, rolled back on ANY exception.

        Not only `sqlite3.Error`: binding a str with a lone surrogate raises UnicodeEncodeError,
        an int beyond 64 bits OverflowError, and a KeyboardInterrupt can land anywhere. Without
        the rollback the connection stays inside the failed transaction and the next, innocent
        write fails with "cannot start a transaction within a transaction". Called with the
        write lock held. `failure` starts the StoreError message.
        """
        try:
            self.writer.execute("BEGIN IMMEDIATE")
            yield
            self.writer.execute("COMMIT")
        except BaseException as error:
            self._rollback()
            if isinstance(error, sqlite3.Error):
                raise StoreError(f"{failure}: {error}") from error
            if isinstance(error, ValueError | TypeError | OverflowError):
                raise StoreDataError(
                    f"{failure}: a value cannot be stored ({type(error).__name__})"
                ) from error
            raise

    def _rollback(self) -> None:
        """Roll back if a transaction is open; a failing ROLLBACK must not hide the first error."""
        with contextlib.suppress(sqlite3.Error):
            if self.writer.in_transaction:
                self.writer.execute("ROLLBACK")

    def _checkpoint_loop(self) -> None:
        connection = open_connection(self.path, self._synchronous)
        try:
            while not self._stop_checkpoints.wait(_CHECKPOINT_INTERVAL):
                try:
                    _, wal_pages, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if wal_pages > _WAL_RESTART_PAGES:
                        # Readers kept the WAL from being reused: wait for them once, then restart it.
                        connection.execute("PRAGMA wal_checkpoint(RESTART)")
                except sqlite3.Error:  # busy or locked: the next round tries again
                    continue
        finally:
            connection.close()

    def close(self) -> None:
        """Close every connection (idempotent); the WAL is checkpointed into the database file."""
        if self._closed:
            return
        self._closed = True
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=30)
        with self._readers_lock:
            for connection in self._readers:
                connection.close()
            self._readers.clear()
        with self.write_lock:
            if self.path != ":memory:":
                with contextlib.suppress(sqlite3.Error):
                    self.writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.writer.close()
