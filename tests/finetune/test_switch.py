"""Switching to a fine-tuned embedder through the real Celery worker: searches in another process see only old
vectors, then only new ones, never a mix; every stored vector moves; a fresh process embeds with the new model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lore.config import Settings
from lore.db import raw_connection
from lore.embedder_switch import request_switch, sweep_answer_questions
from lore.embeddings import LocalEmbedder, OnnxEmbedder
from lore.finetune_embedder import register_model
from lore.onnx_embedder import ensure_onnx
from tests.finetune.helpers import add_answer, build_kb, perturbed_model

QUERIES = ["write JSON to a file", "make a temporary directory", "parse command line arguments", "random sample"]
SEARCHER = r"""
import json, os, sys, time
from pathlib import Path
from lore.config import get_settings
from lore.search import search_scored
settings, queries, stop = get_settings(), sys.argv[1:], Path(os.environ["STOP"])
n = 0
while not stop.exists():
    q = queries[n % len(queries)]
    hits = search_scored(settings, q, k=3, mode="vector", use_feedback=False)
    print(json.dumps({"t": time.time(), "q": q, "hits": [[h.hit.chunk_id, h.similarity] for h in hits]}), flush=True)
    n += 1
    time.sleep(0.02)
"""


def _candidate(settings: Settings) -> tuple[str, OnnxEmbedder]:
    """A registered candidate that won its evaluation: the bundled model with light noise on its weights."""
    name = "embedder-v1"
    directory = perturbed_model(settings.home / "models" / name, scale=0.3)
    ensure_onnx(directory, name=name, home=settings.home)
    report = {"pairs": 100, "before": 0.5, "after": 0.6, "better": True, "against": "all-MiniLM-L6-v2"}
    register_model(settings, name, directory, report)
    return name, OnnxEmbedder(directory, name=name, home=settings.home)


def _passages(settings: Settings) -> dict[int, str]:
    with raw_connection(settings) as conn:
        rows = conn.execute("SELECT id, heading, text FROM chunks").fetchall()
    return {int(i): f"{h}\n{t}" if h else t for i, h, t in rows}


def _consistent(line: dict, queries: dict[str, np.ndarray], passages: dict[int, np.ndarray]) -> bool:
    q = queries[line["q"]]
    return all(abs(float(passages[cid] @ q) - sim) < 2e-3 for cid, sim in line["hits"])


# Training, ONNX export and embedding on 2 shared cores: minutes under load.
@pytest.mark.timeout(1200)
def test_a_switch_is_atomic_for_searches_in_another_process(
    db: Settings, celery_worker: object, tmp_path: Path
) -> None:
    build_kb(db)
    old = LocalEmbedder(home=db.home)
    question = "how do I write JSON to a file"
    answer = add_answer(db, question, cited=[], qvec=old.embed([question])[0])
    with raw_connection(db) as conn:
        conn.execute("INSERT INTO feedback_answers SELECT id, question_embedding FROM answers")
    name, new = _candidate(db)
    passages = _passages(db)
    ids = sorted(passages)
    old_p = dict(zip(ids, old.embed([passages[i] for i in ids]), strict=True))
    new_p = dict(zip(ids, new.embed([passages[i] for i in ids]), strict=True))
    old_q = dict(zip(QUERIES, old.embed(QUERIES), strict=True))
    new_q = dict(zip(QUERIES, new.embed(QUERIES), strict=True))
    assert float(old_q[QUERIES[0]] @ new_q[QUERIES[0]]) < 0.99  # the two models are told apart

    stop = tmp_path / "stop"
    log = tmp_path / "searches.jsonl"
    with log.open("w") as sink:  # a file, not a pipe: a full pipe would stall the searcher
        searcher = subprocess.Popen(
            [sys.executable, "-c", SEARCHER, *QUERIES], stdout=sink, env={**os.environ, "STOP": str(stop)}
        )
        while not log.read_text().strip():  # searching before the switch starts
            assert searcher.poll() is None, "the searching process died"
            time.sleep(0.1)
        requested = time.time()
        result = request_switch(db, name, wait_s=600)
        switched = time.time()
        time.sleep(3.0)
        stop.touch()
        assert searcher.wait(timeout=120) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert result == {"activated": True}

    kinds = []
    for line in lines:
        is_old, is_new = _consistent(line, old_q, old_p), _consistent(line, new_q, new_p)
        assert is_old or is_new, f"a search mixed the two models' vectors: {line}"
        kinds.append("old" if is_old else "new")
    # Old vectors until the swap, new ones after it: never back.
    timeline = [(round(line["t"] - requested, 2), k) for line, k in zip(lines, kinds, strict=True)]
    assert "new" in kinds and kinds.index("new") > 0, (round(switched - requested, 2), timeline)
    assert "old" not in kinds[kinds.index("new") :]
    assert any(k == "old" and line["t"] > requested for k, line in zip(kinds, lines, strict=True))
    assert all(k == "new" for k, line in zip(kinds, lines, strict=True) if line["t"] > switched + 0.5)

    # Every stored vector is the new model's: passages, the question of the answer, the feedback memory's copy.
    with raw_connection(db) as conn:
        stored = {int(i): np.asarray(v) for i, v in conn.execute("SELECT id, embedding FROM chunks")}
        q_vec = np.asarray(
            conn.execute("SELECT question_embedding FROM answers WHERE id = %s", (answer,)).fetchone()[0]
        )
        f_vec = np.asarray(conn.execute("SELECT question_embedding FROM feedback_answers").fetchone()[0])
        state = conn.execute("SELECT active, version, shadow, switching_since FROM embedder_state").fetchone()
        statuses = dict(conn.execute("SELECT name, status FROM embedder_models").fetchall())
        shadow_left = conn.execute("SELECT count(*) FROM chunks WHERE embedding_next IS NOT NULL").fetchone()[0]
        pages = conn.execute(
            "SELECT d.embedding, array_agg(c.id) FROM documents d JOIN chunks c ON c.document_id = d.id"
            " GROUP BY d.id HAVING count(*) > 1"
        ).fetchall()
    assert all(float(stored[i] @ new_p[i]) > 0.9999 for i in ids)
    # The page vectors moved in the same swap: each is the normalized mean of its passages' new vectors.
    assert pages
    for page, chunk_ids in pages:
        mean = np.mean([new_p[int(i)] for i in chunk_ids], axis=0)
        assert float(np.asarray(page) @ (mean / np.linalg.norm(mean))) > 0.9999
    expected_q = new.embed([question])[0]
    assert float(q_vec @ expected_q) > 0.9999 and float(f_vec @ expected_q) > 0.9999
    assert state == (name, 1, None, None) and statuses == {name: "active"} and shadow_left == 0

    # A fresh process embeds with the active model.
    probe = "a fresh process asks a question"
    done = subprocess.run(
        [sys.executable, "-c",
         "import json; from lore.config import get_settings; from lore.embeddings import get_embedder;"
         f"print(json.dumps(get_embedder(get_settings()).embed([{probe!r}])[0].tolist()))"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    fresh = np.asarray(json.loads(done.stdout), dtype=np.float32)
    assert float(fresh @ new.embed([probe])[0]) > 0.9999
    assert float(fresh @ old.embed([probe])[0]) < 0.99

    # An answer recorded after the swap with a question embedded before it is put right by the sweep.
    late = add_answer(
        db, "a question embedded before the swap", cited=[], qvec=old.embed(["a question embedded before the swap"])[0]
    )
    assert sweep_answer_questions(db, answer) == 1
    with raw_connection(db) as conn:
        fixed = np.asarray(conn.execute("SELECT question_embedding FROM answers WHERE id = %s", (late,)).fetchone()[0])
    assert float(fixed @ new.embed(["a question embedded before the swap"])[0]) > 0.9999
