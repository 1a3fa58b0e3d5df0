"""How much of the knowledge base the embedder never reads: passages (heading + text, as embedded) longer than the
model's max_seq_length tokens, which it truncates.

    LORE_HOME=/work/kb/pydocs .venv/bin/python bench/embedder_truncation.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from lore.config import get_settings
    from lore.db import raw_connection
    from lore.onnx_embedder import bundled_model_dir, load_tokenizer, read_model_spec

    spec = read_model_spec(bundled_model_dir())
    limit = spec.max_seq_length
    tokenizer = load_tokenizer(bundled_model_dir(), spec)
    tokenizer.no_truncation()  # whole lengths: how far past the limit each passage runs
    with raw_connection(get_settings()) as conn:
        rows = conn.execute("SELECT heading, text FROM chunks").fetchall()
    lengths = [len(e.ids) for e in tokenizer.encode_batch([f"{h}\n{t}" if h else t for h, t in rows])]
    over = [n for n in lengths if n > limit]
    cut = sum(n - limit for n in over)
    total = max(1, sum(lengths))
    share = len(over) / max(1, len(lengths))
    print(
        f"max_seq_length {limit}: {len(over)} of {len(lengths)} passages truncated ({share:.1%}),"
        f" {cut} of {total} tokens unread ({cut / total:.2%})"
    )


if __name__ == "__main__":
    main()
