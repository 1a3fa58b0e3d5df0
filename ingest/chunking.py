"""Structure-aware chunking: sections under their heading path, packed to a word budget the embedder can read.

Chunks aim at `settings.chunk_words` words *including* their heading path, which is stored in the chunk's
`heading` column and prefixed to the text that is embedded. Prose splits at paragraph, then sentence boundaries;
code blocks split only between lines.

Words are only a proxy for what the embedder reads: the bundled model reads 256 tokens, and 160 words of technical
text often run past that (identifiers split into many word pieces), so a quarter of the Python docs' passages
used to lose their ends to it. Given the embedder's tokenizer (`max_tokens`, `count_tokens`), a passage that would
be cut is cut here instead, into passages the embedder reads whole (bench/embedder_truncation.py measures this).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from ingest.document import Block, Parsed

# Bump when parsing or chunking changes, so re-ingest re-chunks documents whose bytes did not change
# (2: generated index and search pages of documentation sites are skipped, and removed if indexed before;
# 3: Sphinx tables of contents are navigation, dropped, and a page with nothing else is skipped;
# 4: a Sphinx page's breadcrumb is kept in front of its heading paths, and passages fit the embedder's tokens).
CHUNKER_VERSION = "4"
HEADING_SEPARATOR = " > "
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'`*\[-])")
# A very long token (a URL, base64) costs the embedder several tokens: count it as several words.
_CHARS_PER_WORD = 25
# A passage is never cut below this many words to fit the tokenizer (a heading path alone may nearly fill it).
_MIN_WORDS = 16
TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class ChunkText:
    """One chunk before embedding: where it sits, what it says, and the exact text the embedder reads."""

    ord: int
    heading: str
    text: str

    @property
    def embed_input(self) -> str:
        return f"{self.heading}\n{self.text}" if self.heading else self.text

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(self.embed_input.encode("utf-8")).hexdigest()


def word_weight(text: str) -> int:
    return sum(1 + len(word) // _CHARS_PER_WORD for word in text.split())


def _split_long_token_line(line: str, budget: int) -> list[str]:
    """Split a line by words into pieces within budget; a single giant token is cut by characters."""
    pieces: list[str] = []
    current: list[str] = []
    weight = 0
    for word in line.split():
        w = 1 + len(word) // _CHARS_PER_WORD
        if w > budget:
            step = budget * _CHARS_PER_WORD
            pieces.extend(word[i : i + step] for i in range(0, len(word), step))
            continue
        if current and weight + w > budget:
            pieces.append(" ".join(current))
            current, weight = [], 0
        current.append(word)
        weight += w
    if current:
        pieces.append(" ".join(current))
    return pieces


def _prose_pieces(text: str, budget: int) -> list[str]:
    if word_weight(text) <= budget:
        return [text]
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n|\n(?=[-*] |\d+\. )", text):
        if word_weight(paragraph) <= budget:
            pieces.append(paragraph)
            continue
        for sentence in _SENTENCE.split(paragraph):
            if word_weight(sentence) <= budget:
                pieces.append(sentence)
            else:
                pieces.extend(_split_long_token_line(sentence, budget))
    return [p for p in pieces if p.strip()]


def _code_pieces(code: str, budget: int) -> list[str]:
    """Groups of whole lines within budget; only a single over-long line is ever cut."""
    pieces: list[str] = []
    current: list[str] = []
    weight = 0
    for line in code.split("\n"):
        w = max(word_weight(line), 1)
        if w > budget:
            if current:
                pieces.append("\n".join(current))
                current, weight = [], 0
            pieces.extend(_split_long_token_line(line, budget))
            continue
        if current and weight + w > budget:
            pieces.append("\n".join(current))
            current, weight = [], 0
        current.append(line)
        weight += w
    if current and any(line.strip() for line in current):
        pieces.append("\n".join(current))
    return pieces


def _sections(parsed: Parsed) -> list[tuple[str, list[Block]]]:
    stack: list[tuple[int, str]] = []
    sections: list[tuple[str, list[Block]]] = []
    current: list[Block] = []

    def path() -> str:
        names = [name for _, name in stack]
        if parsed.title and (not names or names[0] != parsed.title):
            names.insert(0, parsed.title)
        return HEADING_SEPARATOR.join(names)

    for block in parsed.blocks:
        if block.kind == "heading":
            if current:
                sections.append((path(), current))
                current = []
            while stack and stack[-1][0] >= block.level:
                stack.pop()
            stack.append((block.level, block.text))
        else:
            current.append(block)
    if current:
        sections.append((path(), current))
    return sections


# A piece of a section: ("prose" | "code", its text); code is fenced when it becomes chunk text.
_Piece = tuple[str, str]


def _cut(kind: str, text: str, budget: int) -> list[_Piece]:
    if kind == "code":
        return [("code", piece) for piece in _code_pieces(text, budget - 2)]
    return [("prose", piece) for piece in _prose_pieces(text, budget)]


def _render(pieces: list[_Piece]) -> str:
    return "\n\n".join(f"```\n{text}\n```" if kind == "code" else text for kind, text in pieces)


def _pack(pieces: list[_Piece], budget: int) -> list[list[_Piece]]:
    """Consecutive pieces grouped greedily within budget (a piece over budget makes a group of its own)."""
    groups: list[list[_Piece]] = []
    current: list[_Piece] = []
    weight = 0
    for piece in pieces:
        w = word_weight(_render([piece]))
        if current and weight + w > budget:
            groups.append(current)
            current, weight = [], 0
        current.append(piece)
        weight += w
    if current:
        groups.append(current)
    return groups


def _fit(
    heading: str, group: list[_Piece], max_tokens: int | None, count_tokens: TokenCounter | None
) -> list[list[_Piece]]:
    """The group as one passage if the embedder reads all of it (heading path included), else the group cut again,
    under a word budget scaled by how far over the token limit it ran, until every part fits."""
    if max_tokens is None or count_tokens is None:
        return [group]
    text = _render(group)
    tokens = count_tokens(f"{heading}\n{text}" if heading else text)
    weight = word_weight(text)
    if tokens <= max_tokens or weight <= _MIN_WORDS:
        return [group]
    smaller = max(_MIN_WORDS, min(weight - 1, int(weight * max_tokens / tokens * 0.9)))
    parts: list[list[_Piece]] = []
    for part in _pack([cut for kind, piece in group for cut in _cut(kind, piece, smaller)], smaller):
        parts.extend(_fit(heading, part, max_tokens, count_tokens))
    return parts


def chunk_document(
    parsed: Parsed,
    *,
    chunk_words: int,
    max_tokens: int | None = None,
    count_tokens: TokenCounter | None = None,
) -> list[ChunkText]:
    """The document's chunks in reading order, each with its heading path. With the embedder's tokenizer
    (`count_tokens`, counting special tokens as the embedder does, and its `max_tokens`), no chunk runs past what
    the embedder reads."""
    chunks: list[ChunkText] = []
    for heading, blocks in _sections(parsed):
        budget = max(chunk_words - word_weight(heading), chunk_words // 2)
        # The page's context (its breadcrumb) leads the heading path but is left out of the word budget, so it
        # does not move passage boundaries; the token limit counts it, as the embedder reads it.
        heading = HEADING_SEPARATOR.join([*parsed.context, heading] if heading else parsed.context)
        pieces = [piece for block in blocks for piece in _cut(block.kind, block.text, budget)]
        for group in _pack(pieces, budget):
            for part in _fit(heading, group, max_tokens, count_tokens):
                chunks.append(ChunkText(len(chunks), heading, _render(part)))
    return chunks
