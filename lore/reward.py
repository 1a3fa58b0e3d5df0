"""A small CPU reward model from votes and pairs: logistic regression on embedding features; picks best-of-N.

Features of (question, answer, retrieved context) are built from the embedder Lore already runs: the answer
vector, its element-wise products with the question and the context centroid (does the answer address the
question, does it stay on its sources), their cosines, length and an "I don't know" flag. Single votes are
pointwise rows (label up/down); comparisons and corrections are Bradley-Terry rows (features of the chosen
minus the rejected, label 1, and the mirror, label 0), so one linear model learns from both. The model is
saved as plain arrays (no pickle) under LORE_HOME/reward/.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lore.config import Settings
from lore.db import raw_connection
from lore.embeddings import get_embedder
from lore.exports import in_eval
from lore.logs import kv

log = logging.getLogger(__name__)

MIN_EXAMPLES = 20  # fewer labelled rows than this: nothing worth fitting
HELD_OUT = 0.25


class NotEnoughData(RuntimeError):
    """Too few votes or pairs to train a reward model; nothing was changed."""


def model_path(settings: Settings) -> Path:
    return settings.home / "reward" / "model.npz"


def features(question: np.ndarray, answers: np.ndarray, context: np.ndarray, texts: list[str]) -> np.ndarray:
    """One row per answer; `question` and `context` (centroid) are single vectors, `answers` one per text."""
    ctx = context / max(float(np.linalg.norm(context)), 1e-9)
    lengths = np.log1p(np.array([len(t.split()) for t in texts], dtype=np.float32))[:, None]
    dont_know = np.array([t.strip().lower().startswith(("i don't know", "i do not know")) for t in texts])[:, None]
    return np.hstack(
        [
            answers,
            answers * question[None, :],
            answers * ctx[None, :],
            (answers @ question)[:, None],
            (answers @ ctx)[:, None],
            lengths / 5.0,
            dont_know.astype(np.float32),
        ]
    ).astype(np.float32)


_LOAD = """
SELECT a.id, coalesce(a.channel_id || ':' || a.thread_ts, 'answer:' || a.id), a.question_embedding, a.answer,
       (SELECT avg(c.embedding) FROM chunks c WHERE c.id = ANY(a.chunk_ids)),
       coalesce((SELECT sum(v.value) FROM votes v WHERE v.answer_id = a.id), 0)
FROM answers a WHERE a.question_embedding IS NOT NULL AND a.answer <> ''
"""


def _dataset(settings: Settings) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows (X), labels (y) and the thread of each row (for a held-out split that keeps threads whole)."""
    with raw_connection(settings) as conn:
        rows = conn.execute(_LOAD).fetchall()
        pairs = conn.execute("SELECT chosen_id, rejected_id FROM comparisons").fetchall()
        corrections = conn.execute(
            "SELECT answer_id, correction FROM critiques WHERE correction IS NOT NULL AND correction <> ''"
        ).fetchall()
    if not rows:
        raise NotEnoughData("no answers yet")
    ids = {int(r[0]) for r in rows}
    singles = [int(r[5]) > 0 for r in rows if int(r[5]) != 0]
    n_pairs = sum(1 for c, r in pairs if int(c) in ids and int(r) in ids) + sum(
        1 for a, _ in corrections if int(a) in ids
    )
    # Checked before embedding anything: too little data must cost nothing.
    if len(singles) + 2 * n_pairs < MIN_EXAMPLES or (not n_pairs and len(set(singles)) < 2):
        raise NotEnoughData(
            f"only {len(singles)} votes and {n_pairs} pairs; need at least {MIN_EXAMPLES} labelled examples with both "
            "up and down votes (or pairs)"
        )
    embedder = get_embedder(settings)
    texts = [r[3] for r in rows] + [c[1] for c in corrections]
    vectors = embedder.embed(texts)
    by_id: dict[int, int] = {int(r[0]): i for i, r in enumerate(rows)}
    dim = vectors.shape[1]

    def feats(i: int, text_vec: np.ndarray, text: str) -> np.ndarray:
        question = np.asarray(rows[i][2], dtype=np.float32)
        context = np.asarray(rows[i][4], dtype=np.float32) if rows[i][4] is not None else np.zeros(dim, np.float32)
        return features(question, text_vec[None, :], context, [text])[0]

    xs: list[np.ndarray] = []
    ys: list[int] = []
    threads: list[str] = []
    for i, row in enumerate(rows):
        if int(row[5]) != 0:
            xs.append(np.append(feats(i, vectors[i], row[3]), 1.0))  # last column: pointwise bias
            ys.append(int(int(row[5]) > 0))
            threads.append(row[1])
    duels: list[tuple[int, np.ndarray, str, np.ndarray, str]] = []
    for chosen, rejected in pairs:
        if int(chosen) in by_id and int(rejected) in by_id:
            c, r = by_id[int(chosen)], by_id[int(rejected)]
            duels.append((c, vectors[c], rows[c][3], vectors[r], rows[r][3]))
    for n, (answer_id, correction) in enumerate(corrections):
        if int(answer_id) in by_id:
            i = by_id[int(answer_id)]
            duels.append((i, vectors[len(rows) + n], correction, vectors[i], rows[i][3]))
    for i, chosen_vec, chosen_text, rejected_vec, rejected_text in duels:
        diff = feats(i, chosen_vec, chosen_text) - feats(i, rejected_vec, rejected_text)
        for sign in (1, -1):
            xs.append(np.append(sign * diff, 0.0))
            ys.append(int(sign > 0))
            threads.append(rows[i][1])
    if len(xs) < MIN_EXAMPLES or len(set(ys)) < 2:
        raise NotEnoughData(
            f"only {len(xs)} labelled examples ({sum(ys)} positive); need at least {MIN_EXAMPLES} with both up and "
            "down votes (or pairs)"
        )
    return np.vstack(xs), np.array(ys), threads


def train_reward(settings: Settings) -> dict[str, Any]:
    """Fit on the votes and pairs, report held-out accuracy/AUC, save; raises NotEnoughData otherwise."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score

    x, y, threads = _dataset(settings)
    held = np.array([in_eval(t, HELD_OUT) for t in threads])
    if held.all() or not held.any() or len(set(y[~held])) < 2:
        # Too few threads for a thread split to leave both sides usable: fall back to every 4th row.
        held = np.arange(len(y)) % 4 == 0
    model = LogisticRegression(C=1.0, fit_intercept=False, max_iter=2000)
    model.fit(x[~held], y[~held])
    probs = model.predict_proba(x[held])[:, 1]
    metrics: dict[str, Any] = {
        "examples": len(y),
        "train": int((~held).sum()),
        "held_out": int(held.sum()),
        "accuracy": round(float(accuracy_score(y[held], probs >= 0.5)), 4),
        "auc": round(float(roc_auc_score(y[held], probs)), 4) if len(set(y[held])) == 2 else None,
    }
    model.fit(x, y)  # the saved model uses every example
    path = model_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**metrics, "embedder": settings.embeddings, "trained_at": datetime.now(UTC).isoformat()}
    np.savez(path, coef=model.coef_[0].astype(np.float64), meta=np.array(json.dumps(meta)))
    log.info(kv("reward_trained", **metrics))
    return {**meta, "path": str(path)}


_cache: dict[str, tuple[float, np.ndarray]] = {}
_cache_lock = threading.Lock()


def _weights(settings: Settings) -> np.ndarray | None:
    path = model_path(settings)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    with _cache_lock:
        cached = _cache.get(str(path))
        if cached is None or cached[0] != mtime:
            with np.load(path) as data:
                cached = (mtime, np.asarray(data["coef"], dtype=np.float32))
            _cache[str(path)] = cached
        return cached[1]


def score_candidates(settings: Settings, *, question: str, candidates: list[str], context: list[str]) -> list[float]:
    """Reward of each candidate answer (higher is better); empty when no model is trained."""
    weights = _weights(settings)
    if weights is None or not candidates:
        return []
    embedder = get_embedder(settings)
    vectors = embedder.embed([question, *candidates, *context])
    q, answers = vectors[0], vectors[1 : 1 + len(candidates)]
    ctx = vectors[1 + len(candidates) :].mean(axis=0) if context else np.zeros_like(q)
    rows = np.hstack([features(q, answers, ctx, candidates), np.ones((len(candidates), 1), np.float32)])
    if rows.shape[1] != weights.shape[0]:
        log.warning(kv("reward_model_stale", reason="feature_size", expected=weights.shape[0], got=rows.shape[1]))
        return []
    return [float(s) for s in rows @ weights]


def choose_best(settings: Settings, *, question: str, candidates: list[str], context: list[str]) -> int:
    """Index of the candidate the reward model prefers; 0 when no model is trained."""
    scores = score_candidates(settings, question=question, candidates=candidates, context=context)
    return int(np.argmax(scores)) if scores else 0
