"""The ONNX Runtime embedder: sentence-transformers' vectors without torch, built once under LORE_HOME, and one
clear error (naming the file and the command that rebuilds it) for a file that is missing, truncated, built
from other weights, of the wrong output shape or giving other vectors."""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ingest.chunking import chunk_document
from ingest.document import RawDocument
from ingest.loaders.files import PARSERS
from lore import onnx_embedder
from lore.config import get_settings
from lore.embeddings import EmbeddingError, LocalEmbedder, OnnxEmbedder, SentenceTransformerEmbedder
from lore.onnx_embedder import (
    BUNDLED_NAME,
    bundled_model_dir,
    cached_fingerprint,
    model_fingerprint,
    onnx_file_for,
)
from tests.conftest import REPO

PYDOCS = Path("/usr/share/doc/python3.11/html")
PAGES = ["library/argparse.html", "library/json.html", "library/pathlib.html", "tutorial/errors.html"]


def real_passages() -> list[str]:
    """The handbook and a few Python docs pages, chunked as `lore ingest` chunks them, plus whole pages (longer
    than the model's 256 tokens: truncated) and texts at the edges."""
    assert PYDOCS.is_dir(), f"the Python docs are needed at {PYDOCS} (apt-get install python3.11-doc)"
    paths = sorted((REPO / "examples").glob("*.md")) + [PYDOCS / page for page in PAGES]
    texts: list[str] = []
    for path in paths:
        parser = PARSERS[path.suffix]
        raw = RawDocument(uri=path.as_uri(), source=str(path), source_kind="file", data=path.read_bytes(), parse=parser)
        chunks = chunk_document(parser(raw), chunk_words=160)
        texts.extend(c.embed_input for c in chunks[:10])
        texts.append(" ".join(c.text for c in chunks[:6]))  # far past 256 tokens
    return [*texts, "", "x", "   padded with spaces   ", "naïve café — 日本語のテキスト", "def f(x):\n    return x**2"]


@pytest.fixture(scope="module")
def served() -> LocalEmbedder:
    """The bundled model as the suite serves it (its ONNX file built under the test LORE_HOME on first use)."""
    embedder = LocalEmbedder()
    embedder.load()
    return embedder


@pytest.mark.timeout(900)  # two models over a hundred passages: minutes when the machine's cores are shared
def test_same_vectors_as_sentence_transformers_on_real_passages(served: LocalEmbedder) -> None:
    texts = real_passages()
    longest = max(len(e.ids) for e in served.load().tokenizer.encode_batch(texts))
    assert len(texts) >= 100 and longest == 256  # truncation at max_seq_length is exercised
    reference = SentenceTransformerEmbedder().embed(texts)
    vectors = served.embed(texts)
    assert vectors.shape == reference.shape == (len(texts), 384) and vectors.dtype == np.float32
    assert float(np.abs(vectors - reference).max()) <= 1e-5
    # Alone or in any batch (sorted by length, padded), a text gets the same vector.
    small = OnnxEmbedder(bundled_model_dir(), name=BUNDLED_NAME, batch_size=7)
    assert float(np.abs(small.embed(texts[:40][::-1])[::-1] - vectors[:40]).max()) <= 1e-5
    assert float(np.abs(served.embed([texts[3]])[0] - reference[3]).max()) <= 1e-5


def test_a_model_directory_is_exported_on_first_use_under_lore_home(served: LocalEmbedder, tmp_path: Path) -> None:
    """How a fine-tuned model is served: a copy of the weights under a name of its own, built on first use."""
    model_dir = tmp_path / "tuned"
    shutil.copytree(bundled_model_dir(), model_dir)
    home = tmp_path / "home"
    expected = home / "onnx" / f"tuned-v1-{model_fingerprint(model_dir)[:16]}.onnx"
    assert onnx_file_for(model_dir, name="tuned-v1", home=home) == expected and not expected.exists()
    embedder = OnnxEmbedder(model_dir, name="tuned-v1", home=home)
    assert (embedder.name, embedder.dim) == ("tuned-v1", 384)
    texts = ["how do I roll back a deploy?", "Return the JSON encoding of obj."]
    assert float(np.abs(embedder.embed(texts) - served.embed(texts)).max()) <= 1e-6
    assert expected.is_file() and embedder.load().path == expected
    assert cached_fingerprint(model_dir, home) == model_fingerprint(model_dir)  # remembered, and right
    # Other weights are another file: change one byte of the tokenizer's vocabulary and the key changes.
    tokenizer = model_dir / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text(encoding="utf-8").replace('"[UNK]"', '"[UNk]"', 1), encoding="utf-8")
    assert onnx_file_for(model_dir, name="tuned-v1", home=home) != expected


def _copy_served(served: LocalEmbedder, home: Path) -> Path:
    target = onnx_file_for(bundled_model_dir(), name=BUNDLED_NAME, home=home)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(served.load().path, target)
    return target


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _other_fingerprint(path: Path) -> None:
    import onnx

    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "lore.fingerprint":
            prop.value = "0" * 64
    onnx.save(model, str(path))


def _graph(path: Path, dim: int) -> None:
    """A valid ONNX file under the right name and metadata, whose token embeddings are a random lookup table
    of `dim` columns: the wrong shape (dim 10), or the right shape with other vectors (dim 384)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    original = onnx.load(str(path), load_external_data=False)
    table = np.random.default_rng(0).standard_normal((30522, dim)).astype(np.float32)
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in onnx_embedder.INPUTS]
    output = helper.make_tensor_value_info(onnx_embedder.OUTPUT, TensorProto.FLOAT, ["batch", "sequence", dim])
    node = helper.make_node("Gather", ["table", "input_ids"], [onnx_embedder.OUTPUT])
    graph = helper.make_graph([node], "fake", inputs, [output], initializer=[numpy_helper.from_array(table, "table")])
    fake = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    fake.ir_version = original.ir_version
    fake.metadata_props.extend(original.metadata_props)
    onnx.save(fake, str(path))


BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, r"cannot be loaded \(truncated or not an ONNX file\?"),
    "built from other weights": (_other_fingerprint, r"was built from other weights \(fingerprint 0{16}, "),
    "wrong output shape": (
        lambda p: _graph(p, 10),
        r"output of shape \(1, \d+, 10\), expected \(1, \d+, 384\)",
    ),
    "other vectors": (lambda p: _graph(p, 384), r"gives other vectors than the model it was exported from"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_onnx_file_is_one_clear_error_never_vectors(served: LocalEmbedder, tmp_path: Path, case: str) -> None:
    spoil, reason = BAD_FILES[case]
    path = _copy_served(served, tmp_path)
    spoil(path)
    embedder = LocalEmbedder(home=tmp_path)
    for _ in range(2):  # and again: nothing half-loaded is used the second time
        with pytest.raises(EmbeddingError) as caught:
            embedder.embed(["how do I parse command line arguments?"])
        message = str(caught.value)
        assert message.startswith(f"the ONNX model {path} ") and "\n" not in message
        assert message.endswith(": rebuild it with `python -m lore.onnx_embedder build --force`")
        assert re.search(reason, message), message
    assert path.stat().st_size > 0  # the bad file is left for the user to look at, not replaced behind their back


def test_a_missing_file_that_may_not_be_built_names_the_build_command(tmp_path: Path) -> None:
    embedder = LocalEmbedder(home=tmp_path, build_missing=False)
    with pytest.raises(EmbeddingError) as caught:
        embedder.embed(["anything"])
    path = onnx_file_for(bundled_model_dir(), name=BUNDLED_NAME, home=tmp_path)
    assert str(caught.value) == f"the ONNX model {path} is missing: build it with `python -m lore.onnx_embedder build`"
    assert not path.exists()


def test_the_rebuild_command_in_the_error_fixes_a_bad_file(
    served: LocalEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _copy_served(served, tmp_path)
    _truncate(path)
    with pytest.raises(EmbeddingError) as caught:
        LocalEmbedder(home=tmp_path).embed(["q"])
    command = shlex.split(str(caught.value).rsplit("`", 2)[1])
    assert command[:3] == ["python", "-m", "lore.onnx_embedder"]
    monkeypatch.setenv("LORE_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert onnx_embedder.main(command[3:]) == 0
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    texts = ["how do I parse command line arguments?"]
    assert np.array_equal(LocalEmbedder(home=tmp_path).embed(texts), served.embed(texts))


def test_a_model_directory_without_weights_is_refused(tmp_path: Path) -> None:
    shutil.copy(bundled_model_dir() / "config.json", tmp_path / "config.json")
    with pytest.raises(EmbeddingError, match="no model weights"):
        OnnxEmbedder(tmp_path, name="empty", home=tmp_path).embed(["q"])
