"""Training pairs for fine-tuning the embedder, from the knowledge base and the team's feedback (no LLM).

- Pseudo-questions from the knowledge base: a section's heading (under its page title) asks for the section's
  first passage; an identifier (a signature line such as `json.dump(obj, fp, ...)`) asks for the passage that
  defines it, and so does the definition's first sentence; a passage's first prose sentence asks for the rest
  of the passage (the sentence taken out, so the pair is not a copy).
- Feedback: a question whose answer was upvoted asks for the answer's top source; a correction naming a page
  makes that page the answer and the corrected answer's top source a hard negative; a comparison makes the
  chosen answer's top source the answer and the rejected one's a hard negative; a downvoted answer's top source
  is a hard negative for its question. A page that any signal calls right for a question is never a negative
  for it.
- Held out, never used for pairs: every pseudo-question of a share of the documents (by a hash of the uri),
  and a share of the feedback questions (by a hash of the question). They are the evaluation set.
- Only public passages and non-private answers are used unless asked: the model serves every channel.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lore.config import Settings
from lore.db import raw_connection
from lore.eval import EvalRow
from lore.types import PUBLIC

# Shares held out for evaluation: of the documents (all their pseudo-questions), of the feedback questions.
DOCUMENT_HOLDOUT = 0.2
FEEDBACK_HOLDOUT = 0.3
# A mined negative must score below this share of the positive's similarity: closer ones are often other
# right answers (the same function documented twice), and training against them would hurt.
NEGATIVE_MARGIN = 0.95
# Candidates looked at when mining a hard negative.
MINE_DEPTH = 30

_SIGNATURE = re.compile(
    r"^(?:class |exception |async |awaitable |coroutine )?([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\(.*\)\s*$"
)
_ATTRIBUTE = re.compile(r"^([a-z_]\w*(?:\.[A-Za-z_]\w*)+)\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`\"'])")
_MIN_SENTENCE_WORDS = 6


@dataclass
class Corpus:
    """The knowledge base's passages as the embedder reads them (heading + text), with their stored vectors."""

    ids: list[int]
    uris: list[str]
    titles: list[str]
    headings: list[str]
    bodies: list[str]
    hashes: list[str]
    public: np.ndarray  # bool per passage
    vectors: np.ndarray  # the active model's unit vectors, one row per passage
    by_id: dict[int, int] = field(default_factory=dict)
    by_uri: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {chunk_id: i for i, chunk_id in enumerate(self.ids)}
        self.by_uri = defaultdict(list)
        for i, uri in enumerate(self.uris):
            self.by_uri[uri].append(i)

    def __len__(self) -> int:
        return len(self.ids)

    def passage(self, i: int) -> str:
        """The text the embedder reads for passage i (as ingest.chunking.ChunkText.embed_input)."""
        return f"{self.headings[i]}\n{self.bodies[i]}" if self.headings[i] else self.bodies[i]


@dataclass(frozen=True)
class Pair:
    """A training example: a query, its passage (row of the corpus), and hard negatives (rows)."""

    query: str
    positive: int
    kind: str
    negatives: tuple[int, ...] = ()
    # The positive's text when it is not the whole passage (a sentence taken out of it).
    positive_text: str | None = None


@dataclass
class Pairs:
    train: list[Pair]
    held_out: dict[str, list[EvalRow]]  # evaluation set name -> questions
    counts: dict[str, int]


def load_corpus(settings: Settings) -> Corpus:
    """Every passage with its stored vector (binary transfer: 12,000 vectors in well under a second)."""
    with raw_connection(settings) as conn:
        rows = (
            conn.cursor(binary=True)
            .execute(
                "SELECT c.id, c.uri, c.title, c.heading, c.text, c.text_hash, %s = ANY(c.acl), c.embedding"
                " FROM chunks c ORDER BY c.id",
                (PUBLIC,),
            )
            .fetchall()
        )
    vectors = np.array([r[7] for r in rows], dtype=np.float32).reshape(len(rows), -1)
    return Corpus(
        ids=[int(r[0]) for r in rows],
        uris=[str(r[1]) for r in rows],
        titles=[str(r[2]) for r in rows],
        headings=[str(r[3]) for r in rows],
        bodies=[str(r[4]) for r in rows],
        hashes=[str(r[5]) for r in rows],
        public=np.array([bool(r[6]) for r in rows], dtype=bool),
        vectors=vectors,
    )


def bucket(key: str) -> float:
    """A stable share in [0, 1) for a key: which side of a split it falls on, the same on every run."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


def normalize_question(text: str) -> str:
    return " ".join(text.lower().split())


# -- pseudo-questions ------------------------------------------------------------------------------------


def _prose_lines(body: str) -> list[str]:
    """The passage's lines outside fenced code blocks."""
    out, fenced = [], False
    for line in body.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line.rstrip())
    return out


def first_sentence(paragraph: str) -> str:
    text = " ".join(paragraph.split())
    return _SENTENCE_END.split(text, maxsplit=1)[0].strip()


def _paragraphs(lines: list[str]) -> list[str]:
    paragraphs, current = [], []
    for line in lines:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def _without(passage: str, sentence: str) -> str:
    """The passage with a sentence taken out (whitespace-insensitive), for inverse-cloze pairs."""
    flat = " ".join(passage.split())
    return flat.replace(sentence, " ", 1).strip()


def pseudo_questions(corpus: Corpus, i: int, *, first_of_section: bool) -> list[Pair]:
    """The pseudo-questions passage i answers."""
    pairs: list[Pair] = []
    heading = corpus.headings[i]
    if first_of_section and heading:
        parts = [p.strip() for p in heading.split(" > ") if p.strip()]
        if corpus.titles[i] in parts:  # a documentation site's breadcrumb before the page's title: context only
            parts = parts[parts.index(corpus.titles[i]) :]
        if parts:
            query = parts[-1] if len(parts) == 1 else f"{parts[-1]} ({parts[0]})"
            pairs.append(Pair(query, i, "heading"))
    lines = _prose_lines(corpus.bodies[i])
    for n, line in enumerate(lines):
        match = _SIGNATURE.match(line.strip()) or _ATTRIBUTE.match(line.strip())
        if match is None or len(line) > 400:
            continue
        pairs.append(Pair(match.group(1), i, "identifier"))
        definition = next((p for p in _paragraphs(lines[n + 1 :])), "")
        sentence = first_sentence(definition)
        if len(sentence.split()) >= _MIN_SENTENCE_WORDS:
            pairs.append(Pair(sentence, i, "definition", positive_text=_without(corpus.passage(i), sentence)))
        break  # one definition per passage: the first
    for paragraph in _paragraphs(lines):
        if _SIGNATURE.match(paragraph) or paragraph.startswith((">>>", "|", "#")):
            continue
        sentence = first_sentence(paragraph)
        if len(sentence.split()) >= _MIN_SENTENCE_WORDS and not any(p.query == sentence for p in pairs):
            pairs.append(Pair(sentence, i, "sentence", positive_text=_without(corpus.passage(i), sentence)))
        break
    return pairs


def knowledge_base_pairs(corpus: Corpus, *, include_private: bool) -> tuple[list[Pair], list[Pair]]:
    """(training pairs, held-out pairs): the pseudo-questions of held-out documents are never trained on."""
    train: list[Pair] = []
    held: list[Pair] = []
    seen_sections: set[tuple[str, str]] = set()
    usable = [i for i in range(len(corpus)) if include_private or corpus.public[i]]
    buckets = {uri: bucket(uri) for uri in {corpus.uris[i] for i in usable}}
    # A small knowledge base may have no document under the share: hold out the lowest one all the same.
    cut = max(DOCUMENT_HOLDOUT, min(buckets.values(), default=0.0) + 1e-12) if len(buckets) > 1 else DOCUMENT_HOLDOUT
    for i in usable:
        section = (corpus.uris[i], corpus.headings[i])
        pairs = pseudo_questions(corpus, i, first_of_section=section not in seen_sections)
        seen_sections.add(section)
        (held if buckets[corpus.uris[i]] < cut else train).extend(pairs)
    return train, held


# -- feedback ---------------------------------------------------------------------------------------------

_FEEDBACK_SQL = """
SELECT a.id, a.question, a.citations, a.chunk_ids, a.question_embedding,
       coalesce((SELECT sum(v.value) FROM votes v WHERE v.answer_id = a.id
                 AND NOT (v.value > 0 AND EXISTS (SELECT 1 FROM source_picks p
                                                 WHERE p.answer_id = a.id AND p.user_id = v.user_id))), 0),
       coalesce((SELECT array_agg(c.source_uri ORDER BY c.id) FROM critiques c
                 WHERE c.answer_id = a.id AND c.source_uri IS NOT NULL), '{}'),
       coalesce((SELECT array_agg(DISTINCT p.source_uri) FROM source_picks p JOIN votes v
                 ON v.answer_id = p.answer_id AND v.user_id = p.user_id AND v.value > 0
                 WHERE p.answer_id = a.id), '{}')
FROM answers a
WHERE a.question <> '' AND (%(private)s OR NOT a.private)
  AND (EXISTS (SELECT 1 FROM votes v WHERE v.answer_id = a.id)
       OR EXISTS (SELECT 1 FROM critiques c WHERE c.answer_id = a.id AND c.source_uri IS NOT NULL)
       OR EXISTS (SELECT 1 FROM comparisons m WHERE a.id IN (m.chosen_id, m.rejected_id)))
"""


@dataclass
class _Answer:
    question: str
    top_uri: str | None
    chunk_ids: list[int]
    qvec: np.ndarray | None
    score: int  # the sum of its votes, but for the 👍 whose voter picked the source that answered it
    corrections: list[str]
    picks: list[str]  # the sources its 👍 voters said answered it


def _top_uri(citations: list[dict[str, Any]], chunk_ids: list[int], corpus: Corpus) -> str | None:
    """The page an answer led with: its first citation, else its first source passage."""
    ordered = sorted((c for c in citations if isinstance(c, dict) and c.get("uri")), key=lambda c: c.get("number", 0))
    if ordered:
        return str(ordered[0]["uri"])
    for chunk_id in chunk_ids:
        if chunk_id in corpus.by_id:
            return corpus.uris[corpus.by_id[chunk_id]]
    return None


def page_passage(corpus: Corpus, uri: str, answer: _Answer) -> int | None:
    """The passage of a page that stands for it in a pair: the one the answer used, else the closest to its
    question, else the page's first."""
    rows = corpus.by_uri.get(uri)
    if not rows:
        return None
    used = [corpus.by_id[c] for c in answer.chunk_ids if c in corpus.by_id and corpus.uris[corpus.by_id[c]] == uri]
    if used:
        return used[0]
    if answer.qvec is not None:
        return rows[int(np.argmax(corpus.vectors[rows] @ answer.qvec))]
    return rows[0]


def feedback_pairs(settings: Settings, corpus: Corpus, *, include_private: bool) -> tuple[list[Pair], list[EvalRow]]:
    """(training pairs, held-out questions) from votes, the sources voters picked, corrections and comparisons."""
    with raw_connection(settings) as conn:
        rows = conn.execute(_FEEDBACK_SQL, {"private": include_private}).fetchall()
        compared = conn.execute("SELECT chosen_id, rejected_id FROM comparisons").fetchall()
    answers = {
        int(r[0]): _Answer(
            str(r[1]),
            _top_uri(r[2] or [], list(r[3] or []), corpus),
            [int(c) for c in (r[3] or [])],
            None if r[4] is None else np.asarray(r[4], dtype=np.float32),
            int(r[5]),
            [str(u) for u in r[6]],
            [str(u) for u in r[7]],
        )
        for r in rows
    }
    right: dict[str, dict[str, _Answer]] = defaultdict(dict)  # question -> right page -> an answer to it
    wrong: dict[str, dict[str, _Answer]] = defaultdict(dict)
    for answer in answers.values():
        key = normalize_question(answer.question)
        if answer.top_uri and answer.score > 0 and not answer.picks:  # the unnamed 👍 follow the named pages
            right[key][answer.top_uri] = answer
        if answer.top_uri and answer.score < 0:
            wrong[key][answer.top_uri] = answer
        for uri in answer.picks:
            right[key][uri] = answer
        for uri in answer.corrections:
            right[key][uri] = answer
            if answer.top_uri and answer.top_uri != uri:
                wrong[key][answer.top_uri] = answer
    for chosen_id, rejected_id in compared:
        chosen, rejected = answers.get(int(chosen_id)), answers.get(int(rejected_id))
        if chosen is None or not chosen.top_uri:
            continue
        key = normalize_question(chosen.question)
        right[key][chosen.top_uri] = chosen
        if rejected is not None and rejected.top_uri and rejected.top_uri != chosen.top_uri:
            wrong[key][rejected.top_uri] = rejected
    return _feedback_split(corpus, right, wrong)


def _feedback_split(
    corpus: Corpus, right: dict[str, dict[str, _Answer]], wrong: dict[str, dict[str, _Answer]]
) -> tuple[list[Pair], list[EvalRow]]:
    train: list[Pair] = []
    held: list[EvalRow] = []
    for key, pages in sorted(right.items()):
        pages = {uri: a for uri, a in pages.items() if uri in corpus.by_uri}
        if not pages:
            continue
        question = next(iter(pages.values())).question.strip()
        if bucket("feedback:" + key) < FEEDBACK_HOLDOUT:
            held.append(EvalRow(question, tuple(sorted(pages))))
            continue
        negatives = tuple(
            n
            for uri, answer in sorted(wrong.get(key, {}).items())
            if uri not in pages and (n := page_passage(corpus, uri, answer)) is not None
        )
        for uri, answer in sorted(pages.items()):
            positive = page_passage(corpus, uri, answer)
            if positive is not None:
                train.append(Pair(question, positive, "feedback", negatives))
    return train, held


# -- assembling -------------------------------------------------------------------------------------------


def sample_pairs(pairs: list[Pair], limit: int, *, seed: int = 13) -> list[Pair]:
    """Up to `limit` pairs, every feedback pair first, then the pseudo-question kinds in equal turns."""
    rng = random.Random(seed)
    feedback = [p for p in pairs if p.kind == "feedback"]
    by_kind: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        if p.kind != "feedback":
            by_kind[p.kind].append(p)
    for group in by_kind.values():
        rng.shuffle(group)
    out = feedback[:limit]
    kinds = sorted(by_kind)
    while len(out) < limit and any(by_kind[k] for k in kinds):
        for kind in kinds:
            if by_kind[kind] and len(out) < limit:
                out.append(by_kind[kind].pop())
    rng.shuffle(out)
    return out


def held_out_rows(corpus: Corpus, pairs: list[Pair], limit: int, *, seed: int = 17) -> list[EvalRow]:
    """Evaluation questions from held-out pseudo-questions: the kinds in equal turns, relevant = the page."""
    sampled = sample_pairs(pairs, limit, seed=seed)
    return [EvalRow(p.query, (corpus.uris[p.positive],)) for p in sampled]


def mine_negatives(corpus: Corpus, pairs: list[Pair], queries: np.ndarray) -> list[Pair]:
    """Give every pair without a hard negative one: the most similar passage of another page that scores
    below NEGATIVE_MARGIN of the positive (`queries`: the pairs' query vectors, by the active model)."""
    out: list[Pair] = []
    for start in range(0, len(pairs), 512):
        block = queries[start : start + 512]
        sims = block @ corpus.vectors.T
        top = np.argpartition(-sims, min(MINE_DEPTH, sims.shape[1] - 1), axis=1)[:, :MINE_DEPTH]
        for row, pair in enumerate(pairs[start : start + 512]):
            if pair.negatives:
                out.append(pair)
                continue
            ceiling = NEGATIVE_MARGIN * float(sims[row, pair.positive])
            order = top[row][np.argsort(-sims[row, top[row]])]
            negative = next(
                (
                    int(j)
                    for j in order
                    if corpus.uris[j] != corpus.uris[pair.positive] and sims[row, j] < ceiling and corpus.public[j]
                ),
                None,
            )
            out.append(
                pair
                if negative is None
                else Pair(pair.query, pair.positive, pair.kind, (negative,), pair.positive_text)
            )
    return out
