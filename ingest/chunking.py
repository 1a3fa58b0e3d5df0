"""Structure-aware chunking: sections under their heading path, packed to a word budget the embedder can read.

The embedder reads at most 256 tokens (about 180 words), so chunks aim at `settings.chunk_words` words
*including* their heading path within the document, which is stored in the chunk's `heading` column and prefixed
to the text that is embedded. A page's breadcrumb (`Parsed.context`, its site's sections above it) leads that path
but is left out of the budget, so it never moves passage boundaries. Prose splits at paragraph, then sentence
boundaries; code blocks split only between lines.

Words are a proxy: 160 words of technical text often run past 256 word pieces (identifiers split into many), and a
quarter of the Python docs' passages lose their ends to the embedder, found there by full text only. Cutting them
to the tokenizer instead was measured (docs/experiments/passages-cut-to-the-embedders-tokens.diff): 35 % more
passages, 15 % more embedding time, and hybrid search no better on 54 question sets, so it is not done.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ingest.document import Block, Parsed

# Bump when parsing or chunking changes, so re-ingest re-chunks documents whose bytes did not change
# (2: generated index and search pages of documentation sites are skipped, and removed if indexed before;
# 3: Sphinx tables of contents are navigation, dropped, and a page with nothing else is skipped;
# 4: an HTML page's breadcrumb (Sphinx, Read the Docs, MkDocs Material, Docusaurus, Bootstrap, Confluence) is kept
# in front of its heading paths, and an article's own <header> is content).
CHUNKER_VERSION = "4"
HEADING_SEPARATOR = " > "
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'`*\[-])")
# A very long token (a URL, base64) costs the embedder several tokens: count it as several words.
_CHARS_PER_WORD = 25


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


def chunk_document(parsed: Parsed, *, chunk_words: int) -> list[ChunkText]:
    """The document's chunks in reading order, each with its heading path."""
    chunks: list[ChunkText] = []
    for heading, blocks in _sections(parsed):
        budget = max(chunk_words - word_weight(heading), chunk_words // 2)
        # The page's context (its breadcrumb) leads the heading path but is left out of the budget, so it does not
        # move passage boundaries.
        heading = HEADING_SEPARATOR.join([*parsed.context, heading] if heading else parsed.context)
        pieces: list[str] = []
        for block in blocks:
            if block.kind == "code":
                pieces.extend(f"```\n{piece}\n```" for piece in _code_pieces(block.text, budget - 2))
            else:
                pieces.extend(_prose_pieces(block.text, budget))
        current: list[str] = []
        weight = 0
        for piece in pieces:
            w = word_weight(piece)
            if current and weight + w > budget:
                chunks.append(ChunkText(len(chunks), heading, "\n\n".join(current)))
                current, weight = [], 0
            current.append(piece)
            weight += w
        if current:
            chunks.append(ChunkText(len(chunks), heading, "\n\n".join(current)))
    return chunks
