"""LORE_EMBEDDINGS=openai:<model> through the real `openai` client against a local OpenAI-compatible server
(tests/fakes/openai_server.py, whose vectors are real MiniLM embeddings): the 384-d column is filled by asking
text-embedding-3 models for 384 dimensions, by a 384-d model as it is, and any other size is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.openai_server import FakeOpenAI
from ingest.pipeline import ingest_sources
from lore.config import Settings
from lore.embeddings import EmbeddingError, get_embedder
from lore.search import hybrid_search

DOCS = {
    "vpn.md": "# VPN\n\nConnect to the office VPN with WireGuard. Rotate your VPN key every ninety days.\n",
    "lunch.md": "# Lunch\n\nThe canteen serves lunch from noon to two. Vegetarian dishes are marked green.\n",
}


def write_docs(root: Path) -> Path:
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text)
    return root


def using(db: Settings, fake: FakeOpenAI, model: str) -> Settings:
    return db.model_copy(update={"embeddings": f"openai:{model}", "openai_base_url": fake.url})


def test_text_embedding_3_is_asked_for_384_dimensions_and_the_knowledge_base_works(
    db: Settings, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.embedding_dims["text-embedding-3-small"] = 1536
    settings = using(db, fake_openai, "text-embedding-3-small")
    result = ingest_sources(settings, [str(write_docs(tmp_path / "docs"))])
    assert not result.errors and result.chunks_added >= 2
    hits = hybrid_search(settings, "how often should I change my VPN key?", k=1, mode="vector")
    assert hits and hits[0].uri.endswith("vpn.md")
    requests = fake_openai.embedding_requests
    assert requests and all(r.body["model"] == "text-embedding-3-small" for r in requests)
    assert all(r.body.get("dimensions") == 384 for r in requests)


def test_a_model_that_makes_384_d_vectors_is_used_as_it_is(db: Settings, fake_openai: FakeOpenAI) -> None:
    embedder = get_embedder(using(db, fake_openai, "all-minilm"))
    vectors = embedder.embed(["VPN keys", "lunch hours", "VPN keys"])
    assert vectors.shape == (3, 384)
    assert float(vectors[0] @ vectors[2]) == pytest.approx(1.0, abs=1e-5)
    assert float(vectors[0] @ vectors[1]) < 0.9
    (request,) = fake_openai.embedding_requests
    assert "dimensions" not in request.body  # not every server takes it


def test_a_model_of_another_size_is_one_clear_error_and_nothing_is_written(
    db: Settings, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.embedding_dims["nomic-embed-text"] = 768
    settings = using(db, fake_openai, "nomic-embed-text")
    with pytest.raises(EmbeddingError, match=r"openai:nomic-embed-text returned 768-d vectors .* stores 384-d"):
        ingest_sources(settings, [str(write_docs(tmp_path / "docs"))])
    assert hybrid_search(db, "VPN key", k=3) == []
