"""Which offline embedder is active, and how every process follows a switch without ever mixing two models.

`lore finetune embedder` trains copies of all-MiniLM-L6-v2 (lore.finetune_embedder) and records them in
`embedder_models`; `embedder_state` (one row) names the active one (NULL: the bundled model) with a version
that every switch bumps. The rules that keep vectors of two models from ever meeting:

- Stored vectors. A switch (lore.embedder_switch) writes the new model's vectors into shadow columns
  (chunks.embedding_next, answers.question_embedding_next) while searches read the live ones, then one
  transaction swaps the columns, copies the new question vectors into feedback_answers and flips the state:
  a reader sees every old vector or every new one.
- Queries. A process embeds with the model embedder_state names (`ActiveEmbedder`, read at most every
  CHECK_INTERVAL_S, as the feedback memory reads feedback_state). For the last seconds of a switch the state
  is marked `switching`: the switch commits only SWITCH_GRACE_S after that mark (longer than any process
  goes without reading the state, plus a margin for a search in flight), and a process that sees the mark
  waits for the flip instead of embedding with the old model. So no search statement that runs after the
  swap carries an old query vector.
- Ingest. An ingest run holds INGEST_LOCK_KEY shared for its whole run (`ingest_guard`) and reads the state
  afresh once it has it; the final phase of a switch takes the lock exclusively. A run that started before a
  switch's final phase writes the old model's vectors into the live column (its rows' shadow is NULL and the
  switch embeds them before the swap); a run that starts after waits for the swap and embeds with the new
  model. A switch never lands in the middle of a run.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import psycopg

from lore.config import Settings
from lore.logs import kv

log = logging.getLogger(__name__)

# The bundled model's name; fine-tuned copies are called embedder-v1, embedder-v2, ...
BASE_NAME = "all-MiniLM-L6-v2"
# How long a process goes without reading embedder_state (as the feedback memory reads feedback_state).
CHECK_INTERVAL_S = 1.0
# How long a switch waits between marking itself `switching` and swapping: every process has read the mark
# by then, and a search embedded just before the mark has finished its statement.
SWITCH_GRACE_S = CHECK_INTERVAL_S + 1.5
# A `switching` mark older than this belongs to a switch that died: processes stop waiting for it.
SWITCH_STALE_S = 120.0
# Ingest runs hold it shared; a switch's final phase exclusively (ingest.store's bulk lock is 0x4C4F5245).
INGEST_LOCK_KEY = 0x4C4F5246

_STATE_SQL = """
SELECT s.version, s.active, m.path,
       s.switching_since IS NOT NULL AND s.switching_since > now() - make_interval(secs => %s)
FROM embedder_state s LEFT JOIN embedder_models m ON m.name = s.active
WHERE s.id = 1
"""


class ModelUnavailable(RuntimeError):
    """The active embedder's files are not on this machine; the message says which directory to copy."""


class VectorEmbedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


class State(NamedTuple):
    version: int
    active: str | None  # None: the bundled model
    path: str | None  # relative to LORE_HOME
    switching: bool


BASE_STATE = State(0, None, None, False)


def models_dir(settings: Settings) -> Path:
    return settings.home / "models"


def read_state(conn: psycopg.Connection[Any]) -> State:
    """The active embedder as stored (the bundled one when the row is missing)."""
    row = conn.execute(_STATE_SQL, (SWITCH_STALE_S,)).fetchone()
    if row is None:
        return BASE_STATE
    return State(int(row[0]), row[1], row[2], bool(row[3]))


def _may_have_models(settings: Settings) -> bool:
    """Whether a fine-tuned model can be active: with the embedded server, only once LORE_HOME has models (so
    embedding text never starts a database); with DATABASE_URL, always (the models may be elsewhere)."""
    return settings.database_url is not None or models_dir(settings).is_dir()


def _fetch_state(settings: Settings) -> State:
    from lore.db import raw_connection

    try:
        with raw_connection(settings) as conn:
            return read_state(conn)
    except psycopg.errors.UndefinedTable:
        return BASE_STATE  # a database before this revision: nothing was ever switched


def model_embedder(settings: Settings, name: str | None, path: str | None, *, batch_size: int) -> VectorEmbedder:
    """An embedder for a registered model directory (None: the bundled model), as served."""
    from lore.embeddings import LocalEmbedder, OnnxEmbedder

    if name is None or path is None:
        return LocalEmbedder(home=settings.home, batch_size=batch_size)
    directory = settings.home / path
    if not directory.is_dir():
        raise ModelUnavailable(
            f"the active embedder {name} is not at {directory}: copy that directory from the machine that trained"
            " it (LORE_HOME/models is needed wherever Lore embeds)"
        )
    return OnnxEmbedder(directory, name=name, home=settings.home, batch_size=batch_size)


class ActiveEmbedder:
    """The offline embedder of this process: whichever model embedder_state names, followed within
    CHECK_INTERVAL_S, and waited for during a switch's last seconds (module docstring).

    `name` stays the model family's (the ingest pipeline salts content hashes with it): a switch re-embeds
    everything itself, so documents need not count as changed afterwards.
    """

    name = BASE_NAME
    dim = 384

    def __init__(self, settings: Settings, *, batch_size: int = 64) -> None:
        self.settings = settings
        self.batch_size = batch_size
        self._state: State | None = None
        self._checked_at = -math.inf
        self._lock = threading.Lock()
        self._models: dict[str | None, VectorEmbedder] = {}

    @property
    def state(self) -> State:
        """The state this process embeds with now (read if due)."""
        return self._current(force=False)[0]

    def refresh(self) -> State:
        """Read the state now (an ingest run does, once it holds its lock)."""
        return self._current(force=True)[0]

    def model(self) -> VectorEmbedder:
        return self._current(force=False)[1]

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.model().embed(texts)

    def _current(self, *, force: bool) -> tuple[State, VectorEmbedder]:
        now = time.monotonic()
        state = self._state
        if force or state is None or now - self._checked_at >= CHECK_INTERVAL_S:
            with self._lock:
                if force or self._state is None or time.monotonic() - self._checked_at >= CHECK_INTERVAL_S:
                    self._update(self._read())
                state = self._state
        assert state is not None
        return state, self._embedder_for(state)

    def _read(self) -> State:
        if not _may_have_models(self.settings):
            return BASE_STATE
        state = _fetch_state(self.settings)
        waited = 0.0
        while state.switching and waited < SWITCH_STALE_S:
            # The last seconds of a switch: embedding now with the old model could meet the new vectors.
            time.sleep(0.05)
            waited += 0.05
            state = _fetch_state(self.settings)
        return state

    def _update(self, state: State) -> None:
        previous = self._state
        self._state, self._checked_at = state, time.monotonic()
        if previous is not None and previous.version != state.version:
            log.info(kv("embedder.switched", model=state.active or BASE_NAME, version=state.version))
            # The feedback memory holds question vectors of the old model: reload it with the new ones.
            from lore.feedback_memory import note_feedback

            note_feedback(self.settings)

    def _embedder_for(self, state: State) -> VectorEmbedder:
        embedder = self._models.get(state.active)
        if embedder is None:
            with self._lock:
                embedder = self._models.get(state.active)
                if embedder is None:
                    embedder = model_embedder(self.settings, state.active, state.path, batch_size=self.batch_size)
                    self._models[state.active] = embedder
        return embedder

    def forget(self) -> None:
        """Read the state again on the next call (a switch committed in this process)."""
        self._checked_at = -math.inf


_actives: dict[str, ActiveEmbedder] = {}
_actives_lock = threading.Lock()


def active_embedder(settings: Settings) -> ActiveEmbedder:
    """The process-wide ActiveEmbedder for this home and database."""
    key = f"{settings.home}|{settings.database_url or ''}"
    with _actives_lock:
        embedder = _actives.get(key)
        if embedder is None:
            embedder = _actives[key] = ActiveEmbedder(settings, batch_size=settings.embed_batch)
        return embedder


def forget_active(settings: Settings) -> None:
    """Every ActiveEmbedder of this process reads the state on its next call."""
    with _actives_lock:
        actives = list(_actives.values())
    for embedder in actives:
        embedder.forget()


@contextmanager
def ingest_guard(settings: Settings) -> Iterator[None]:
    """Hold INGEST_LOCK_KEY shared for an ingest run, and embed with the state read once it is held."""
    from lore.db import database_url

    conn = psycopg.connect(database_url(settings), autocommit=True, application_name="lore-ingest-guard")
    try:
        conn.execute("SELECT pg_advisory_lock_shared(%s)", (INGEST_LOCK_KEY,))
        if settings.embeddings == "local":
            active_embedder(settings).refresh()
        yield
    finally:
        conn.close()  # ends the session: the lock goes with it
