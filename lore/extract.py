"""Extractive answers for search-only mode: the few sentences of the retrieved passages that answer the question.

Without a language model Lore cannot write an answer, but it can point at one. Whole passages make a poor
answer: they carry Markdown tables, code and headings, and a cut passage ends mid-word. So the best passages
are read as sentences (a table row becomes one sentence, "cell: header value; …"; code blocks, bare headings and
fragments are left out), each sentence is embedded with the knowledge base's own embedder and scored against
the question, and the two or three best are shown in their passage's order, with the sentence before them when
they lean on it ("It…", "This…") and a numbered citation each. Sentences are never cut inside a word: one longer
than MAX_SENTENCE_CHARS ends at a word boundary with an ellipsis.

Why these weights: a sentence is scored by its own cosine to the question plus PASSAGE_WEIGHT times its passage's
cosine, since a sentence alone often lacks the words that made its passage relevant (its heading, the subject
named in the sentence before). Further sentences are shown only when close to the best one (SCORE_MARGIN), so
a question with one clear answer gets one or two sentences, not three loosely related ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lore.config import Settings
from lore.embeddings import get_embedder
from lore.search import ScoredHit

# Passages read (the best first), sentences shown, and how long a shown sentence may be.
MAX_PASSAGES = 4
MAX_SENTENCES = 3
MAX_SENTENCE_CHARS = 320
MAX_SENTENCES_PER_PASSAGE = 40
# A one-line code block after a sentence ending in ':' is shown inline when at most this long.
MAX_INLINE_CODE = 100
PASSAGE_WEIGHT = 0.3
SCORE_MARGIN = 0.08
# Sentences with fewer words than this are fragments (a label, a lone command), not answers.
MIN_WORDS = 4
# A sentence starting with one of these refers back: the sentence before it is shown too.
_LEANING = re.compile(r"^(it|its|this|that|these|those|they|their|there|then|so|such|however|otherwise|also)\b", re.I)
_ABBREVIATIONS = {"e.g", "i.e", "etc", "vs", "cf", "mr", "mrs", "dr", "no", "fig", "approx", "incl", "min", "max"}
_SENTENCE_END = re.compile(r"[.!?][\"')\]*_]*\s+(?=[\"'(\[`*_]*[A-Z0-9`])")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s")
_RULE = re.compile(r"^\s*([=\-~^*#+`'\"])\1{2,}\s*$")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")
_CODE_LINE = re.compile(r"^\s*(\$ |>>> |\.\.\. |#!|[a-z_][\w.]*\s*=\s|(def|class|import|from|return)\s)")


@dataclass(frozen=True)
class Sentence:
    """One readable sentence of a retrieved passage."""

    passage: int  # index of the hit it came from (0 = best)
    position: int  # its order in that passage
    text: str


def _clean(text: str) -> str:
    """Inline Markdown made plain (links to their text, bold marks dropped), whitespace collapsed."""
    text = _LINK.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", text)
    return " ".join(text.split())


def _table_sentences(rows: list[str]) -> list[str]:
    """A Markdown table as sentences: each body row is 'first cell: header value; header value'."""
    cells = [[_clean(c) for c in row.strip().strip("|").split("|")] for row in rows]
    cells = [r for r in cells if not all(re.fullmatch(r":?-{2,}:?|", c) for c in r)]  # the --- separator row
    if len(cells) < 2:
        return []
    header, body = cells[0], cells[1:]
    out = []
    for row in body:
        parts = [f"{h} {v}" if h else v for h, v in zip(header[1:], row[1:], strict=False) if v]
        if row and row[0]:
            out.append(f"{row[0]}: " + "; ".join(parts) + "." if parts else row[0])
    return out


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    """The passage as ('prose' | 'table', lines) blocks; fenced code, headings and RST underlines dropped."""
    blocks: list[tuple[str, list[str]]] = []
    in_code = False
    literal_indent: int | None = None  # inside an RST literal block: lines indented deeper than its opener
    for raw in text.splitlines():
        line = raw.rstrip()
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None and (not line.strip() or indent > literal_indent):
            continue
        literal_indent = None
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
            blocks.append(("code" if in_code else "break", []))
            continue
        if in_code:
            blocks[-1][1].append(line.strip())
            continue
        if line.endswith("::") or line.lstrip().startswith(".. "):
            literal_indent = indent
            line = line[:-1] if line.endswith("::") and not line.lstrip().startswith(".. ") else ""
        if not line.strip() or _HEADING.match(line) or _RULE.match(line):
            blocks.append(("break", []))
            continue
        kind = "table" if line.lstrip().startswith("|") and line.count("|") >= 2 else "prose"
        if kind == "prose" and _BULLET.match(line):
            blocks.append(("break", []))  # each list item is a block of its own
            line = _BULLET.sub("", line, count=1)
        if blocks and blocks[-1][0] == kind:
            blocks[-1][1].append(line)
        else:
            blocks.append((kind, [line]))
    return [(kind, lines) for kind, lines in blocks if kind != "break"]


def split_sentences(text: str) -> list[str]:
    """Sentences of prose, split after . ! ? before a capital, a digit or a quote (not after e.g., i.e., …)."""
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        last_word = text[start : match.start()].rsplit(None, 1)[-1:] or [""]
        if last_word[0].lower().rstrip(".") in _ABBREVIATIONS or re.fullmatch(r"[A-Z]", last_word[0]):
            continue
        out.append(text[start : match.end()].strip())
        start = match.end()
    if text[start:].strip():
        out.append(text[start:].strip())
    return out


def shorten(sentence: str, limit: int = MAX_SENTENCE_CHARS) -> str:
    """The sentence, or its first words up to `limit` characters and an ellipsis: never cut inside a word."""
    if len(sentence) <= limit:
        return sentence
    cut = sentence[: limit + 1].rsplit(None, 1)[0].rstrip(",;:—-")
    return cut + " …"


def _readable(sentence: str) -> bool:
    """Prose worth showing: enough words, mostly letters, not a line of code or a table's remains."""
    if len(sentence.split()) < MIN_WORDS or "|" in sentence or sentence.endswith(":") or _CODE_LINE.match(sentence):
        return False
    prose = re.sub(r"`[^`]*`$", "", sentence)  # a command shown inline after its sentence is not noise
    letters = sum(ch.isalpha() or ch.isspace() for ch in prose)
    return letters >= 0.7 * len(prose)


def passage_sentences(text: str) -> list[str]:
    """The readable sentences of one passage, in order."""
    sentences: list[str] = []
    previous = ""
    for kind, lines in _blocks(text):
        if kind == "table":
            sentences.extend(_table_sentences(lines))
        elif kind == "prose":
            sentences.extend(split_sentences(_clean(" ".join(lines))))
        elif kind == "code" and previous == "prose" and sentences and sentences[-1].endswith(":"):
            # "The command redeploys the previous image:" is an answer only with its command: a short one is
            # kept, inline; a longer block is left out, and so is the sentence that announces it.
            code = [line for line in lines if line]
            if len(code) == 1 and len(code[0]) <= MAX_INLINE_CODE and "`" not in code[0]:
                sentences[-1] += f" `{code[0]}`"
        previous = kind
    return [shorten(s) for s in sentences if _readable(s)]


def candidate_sentences(hits: Sequence[ScoredHit]) -> list[Sentence]:
    out = []
    for index, scored in enumerate(hits[:MAX_PASSAGES]):
        for position, text in enumerate(passage_sentences(scored.hit.text)[:MAX_SENTENCES_PER_PASSAGE]):
            out.append(Sentence(index, position, text))
    return out


def choose_sentences(sentences: Sequence[Sentence], scores: np.ndarray) -> list[Sentence]:
    """The best sentence, the next best within SCORE_MARGIN of it (up to MAX_SENTENCES), and the sentence before
    any chosen one that leans on it; in passage order (passages by their best sentence)."""
    if not sentences:
        return []
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    best = float(scores[order[0]])
    chosen = [i for i in order[:MAX_SENTENCES] if float(scores[i]) >= best - SCORE_MARGIN]
    index = {(s.passage, s.position): i for i, s in enumerate(sentences)}
    for i in list(chosen):
        s = sentences[i]
        before = index.get((s.passage, s.position - 1))
        if before is not None and before not in chosen and _LEANING.match(s.text):
            chosen.append(before)
    rank: dict[int, int] = {}
    for i in order:  # a passage ranks by its best chosen sentence
        if i in chosen:
            rank.setdefault(sentences[i].passage, len(rank))
    return sorted((sentences[i] for i in chosen), key=lambda s: (rank[s.passage], s.position))


def answer_sentences(settings: Settings, query_embedding: np.ndarray, hits: Sequence[ScoredHit]) -> list[Sentence]:
    """The sentences of the best passages that answer the question (empty when none is readable)."""
    sentences = candidate_sentences(hits)
    if not sentences:
        return []
    vectors = np.asarray(
        get_embedder(settings).embed([_in_context(hits[s.passage], s.text) for s in sentences]), dtype=np.float32
    )
    q = np.asarray(query_embedding, dtype=np.float32)
    passage_similarity = np.array([hits[s.passage].similarity or 0.0 for s in sentences], dtype=np.float32)
    scores = vectors @ q + PASSAGE_WEIGHT * passage_similarity
    return choose_sentences(sentences, scores)


def _in_context(scored: ScoredHit, sentence: str) -> str:
    """What is embedded for a sentence: its section's own heading (the last part of the heading path) and it."""
    heading = scored.hit.heading.rsplit(" > ", 1)[-1].strip()  # ingest joins the heading path with " > "
    return f"{heading}: {sentence}" if heading else sentence


def group_by_passage(sentences: Sequence[Sentence]) -> list[tuple[int, str]]:
    """(passage index, text) per passage, in the order given: neighbouring sentences joined by a space, a gap
    between two shown sentences marked with an ellipsis."""
    groups: list[tuple[int, str]] = []
    previous: Sentence | None = None
    for s in sentences:
        if previous is not None and previous.passage == s.passage:
            joiner = " " if s.position == previous.position + 1 else " … "
            groups[-1] = (s.passage, groups[-1][1] + joiner + s.text)
        else:
            groups.append((s.passage, s.text))
        previous = s
    return groups
