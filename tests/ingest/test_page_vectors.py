"""Page vectors (documents.embedding) are written with the passages: the normalized mean of a document's passage
embeddings, none for a document of one passage, and rewritten when a re-ingest changes the passages."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ingest.pipeline import ingest_sources
from lore.config import Settings
from lore.db import raw_connection, register_vectors

SECTIONS = {
    "Deploy": "Deploy the API with make release; the pipeline runs the tests, builds the image and rolls it out.",
    "Rollback": "If a deploy fails, roll back with make rollback and tell the on-call engineer in the channel.",
    "Holidays": "Request holidays in the HR tool two weeks ahead; your manager approves them there.",
}


def _page_and_passages(settings: Settings, name: str) -> tuple[np.ndarray | None, list[np.ndarray]]:
    with raw_connection(settings) as conn:
        register_vectors(conn)
        page, doc_id = conn.execute("SELECT embedding, id FROM documents WHERE uri LIKE %s", (f"%/{name}",)).fetchone()
        passages = [v for (v,) in conn.execute("SELECT embedding FROM chunks WHERE document_id = %s", (doc_id,))]
    return (None if page is None else np.asarray(page)), [np.asarray(v) for v in passages]


def _mean_direction(vectors: list[np.ndarray]) -> np.ndarray:
    mean = np.mean(vectors, axis=0)
    return mean / np.linalg.norm(mean)


def test_page_vectors_follow_the_passages(db: Settings, tmp_path: Path) -> None:
    handbook = tmp_path / "handbook.md"
    handbook.write_text("# Handbook\n\n" + "".join(f"## {h}\n\n{t}\n\n" for h, t in list(SECTIONS.items())[:2]))
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nThe office is closed on the first Monday of May.\n")
    report = ingest_sources(db, [str(handbook), str(note)])
    assert report.errors == [] and report.documents_added == 2

    page, passages = _page_and_passages(db, "handbook.md")
    assert page is not None and len(passages) > 1
    assert float(page @ _mean_direction(passages)) > 0.9999
    assert abs(float(np.linalg.norm(page)) - 1.0) < 1e-4
    note_page, note_passages = _page_and_passages(db, "note.md")
    assert len(note_passages) == 1 and note_page is None  # a page that is one passage has no page vector

    # A re-ingest that changes the passages rewrites the page vector; a note that grows gets one.
    handbook.write_text("# Handbook\n\n" + "".join(f"## {h}\n\n{t}\n\n" for h, t in list(SECTIONS.items())[1:]))
    note.write_text("# Note\n\n" + "".join(f"## {h}\n\n{t}\n\n" for h, t in SECTIONS.items()))
    report = ingest_sources(db, [str(handbook), str(note)])
    assert report.errors == [] and report.documents_updated == 2
    new_page, new_passages = _page_and_passages(db, "handbook.md")
    assert new_page is not None and float(new_page @ _mean_direction(new_passages)) > 0.9999
    assert float(new_page @ page) < 0.999  # it moved with the passages
    grown, grown_passages = _page_and_passages(db, "note.md")
    assert grown is not None and len(grown_passages) == 3
    assert float(grown @ _mean_direction(grown_passages)) > 0.9999
