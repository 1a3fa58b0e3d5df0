"""A small knowledge base of real Python documentation pages, answers with feedback, and test embedders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from harness.kb import add_document
from ingest.chunking import chunk_document
from ingest.parsers import html_to_parsed
from lore.config import Settings
from lore.db import raw_connection

DOCS = Path("/usr/share/doc/python3.11/html/library")
PAGES = [
    "json", "pathlib", "venv", "csv", "datetime", "random", "shutil", "argparse",
    "logging", "sqlite3", "itertools", "functools", "collections", "tempfile",
]  # fmt: skip


def build_kb(settings: Settings, *, pages: list[str] = PAGES, per_page: int = 6) -> dict[str, str]:
    """The first passages of real library pages, parsed and chunked as ingest does; page name -> uri."""
    uris = {}
    for page in pages:
        parsed = html_to_parsed((DOCS / f"{page}.html").read_bytes(), page)
        chunks = chunk_document(parsed, chunk_words=160)[:per_page]
        uri = f"file://{DOCS}/{page}.html"
        add_document(settings, uri=uri, title=parsed.title, sections=[(c.heading, c.text) for c in chunks])
        uris[page] = uri
    return uris


def add_answer(
    settings: Settings,
    question: str,
    *,
    cited: list[str],
    qvec: np.ndarray | None = None,
    private: bool = False,
) -> int:
    """An answer that cited these uris (in order) and used their first passages."""
    with raw_connection(settings) as conn:
        chunk_ids = [
            int(conn.execute("SELECT min(id) FROM chunks WHERE uri = %s", (uri,)).fetchone()[0])  # type: ignore[index]
            for uri in cited
        ]
        citations: list[dict[str, Any]] = [{"number": n, "uri": u, "title": u} for n, u in enumerate(cited, 1)]
        row = conn.execute(
            "INSERT INTO answers (question, question_embedding, answer, model, citations, chunk_ids, private)"
            " VALUES (%s, %s, 'an answer', 'test', %s, %s, %s) RETURNING id",
            (question, qvec, Jsonb(citations), chunk_ids, private),
        ).fetchone()
    assert row is not None
    return int(row[0])


def vote(settings: Settings, answer_id: int, value: int, user: str = "U1") -> None:
    with raw_connection(settings) as conn:
        conn.execute("INSERT INTO votes (answer_id, user_id, value) VALUES (%s, %s, %s)", (answer_id, user, value))


def perturbed_model(out: Path, *, scale: float, seed: int = 0) -> Path:
    """A copy of the bundled model with noise on its weights (`scale` x each tensor's spread): a model whose
    vectors differ from the bundled one's, slightly or (large scale) into uselessness."""
    import torch
    from sentence_transformers import SentenceTransformer

    from lore.onnx_embedder import bundled_model_dir

    model = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * parameter.std() * scale)
    model.save(str(out))
    return out
