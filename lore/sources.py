"""The passages an answer may draw on: which hits are relevant, and their numbering as cited sources.

Free of LangChain, so the search-only answer path (and `lore ask` without a model) never imports it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from lore.prompts import Source
from lore.search import ScoredHit
from lore.types import Citation

_CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def relevant(scored: Sequence[ScoredHit], min_similarity: float) -> list[ScoredHit]:
    """The hits close enough to the question to answer from (a full-text match lowers the bar a little)."""
    out = []
    for s in scored:
        similarity = s.similarity if s.similarity is not None else 0.0
        if similarity >= min_similarity or (s.fulltext and similarity >= min_similarity - 0.1):
            out.append(s)
    return out


@dataclass
class SourceBook:
    """Numbers documents as they enter the prompt: [n] always means the same document within an answer."""

    sources: dict[str, Source] = field(default_factory=dict)  # by uri, in numbering order
    chunk_ids: list[int] = field(default_factory=list)

    def add(self, hits: Sequence[ScoredHit]) -> list[Source]:
        """Register hits; returns the sources they belong to (with the passages of these hits only)."""
        grouped: dict[str, list[str]] = {}
        new: dict[str, list[str]] = {}
        for scored in hits:
            hit = scored.hit
            if hit.uri not in self.sources:
                number = len(self.sources) + 1
                self.sources[hit.uri] = Source(number, hit.uri, hit.title or hit.uri, ())
            passage = f"{hit.heading}\n{hit.text}" if hit.heading else hit.text
            grouped.setdefault(hit.uri, []).append(passage)
            if hit.chunk_id not in self.chunk_ids:
                self.chunk_ids.append(hit.chunk_id)
                new.setdefault(hit.uri, []).append(passage)
        out = []
        for uri, passages in grouped.items():
            known = self.sources[uri]
            self.sources[uri] = Source(known.number, uri, known.title, (*known.passages, *new.get(uri, [])))
            out.append(Source(known.number, uri, known.title, tuple(passages)))
        return out

    def all(self) -> list[Source]:
        return list(self.sources.values())

    def citations(self, answer_text: str) -> list[Citation]:
        """Sources the answer cites by number; when it cites none, every source it was given."""
        by_number = {s.number: s for s in self.sources.values()}
        cited: list[int] = []
        for group in _CITE.findall(answer_text):
            for part in re.split(r"[,;]", group):
                number = int(part.strip())
                if number in by_number and number not in cited:
                    cited.append(number)
        numbers = sorted(cited) if cited else sorted(by_number)
        return [Citation(n, by_number[n].uri, by_number[n].title) for n in numbers]
