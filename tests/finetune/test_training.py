"""A short real training run through the CLI, and activation refusing a model that is worse on held-out questions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lore.config import Settings
from lore.db import raw_connection
from lore.embedder_switch import SwitchError, switch_embedder
from lore.embeddings import OnnxEmbedder, get_embedder
from lore.finetune_embedder import Options, finetune_embedder
from tests.finetune.helpers import build_kb, perturbed_model


# Training, ONNX export and embedding on 2 shared cores: minutes under load.
@pytest.mark.timeout(1200)
def test_a_short_training_run_saves_a_model_that_loads_and_embeds(db: Settings, tmp_path: Path) -> None:
    uris = build_kb(db)
    eval_file = tmp_path / "held_out.jsonl"
    eval_file.write_text(
        json.dumps({"query": "serialize an object to a JSON formatted string", "relevant": [uris["json"]]})
        + "\n"
        + json.dumps({"query": "copy a directory tree", "relevant": [uris["shutil"]]})
        + "\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "lore.cli", "finetune", "embedder", "--json", "--max-steps", "2", "--batch-size", "4",
         "--eval", str(eval_file)],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert {"model", "pairs", "seconds", "before", "after", "activated"} <= set(report)
    assert report["model"] == "embedder-v1" and report["activated"] is False
    assert report["pairs"] >= 32 and report["training"]["steps"] == 2
    assert set(report["eval"]) == {"knowledge base", "held_out.jsonl", "all"}
    assert report["eval"]["held_out.jsonl"]["n"] == 2
    assert 0 <= report["after"] <= 1 and 0 <= report["before"] <= 1

    directory = db.home / "models" / "embedder-v1"
    vectors = OnnxEmbedder(directory, name="embedder-v1", home=db.home).embed(["how do I parse JSON?", "shutil"])
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    base = get_embedder(db).embed(["how do I parse JSON?"])[0]
    # Trained: not the bundled weights any more, but close to them after two small steps.
    assert 0.9 < float(vectors[0] @ base) < 0.999999
    with raw_connection(db) as conn:
        row = conn.execute("SELECT status, pairs, path FROM embedder_models WHERE name = 'embedder-v1'").fetchone()
        state = conn.execute("SELECT active, version FROM embedder_state").fetchall()
    assert row is not None and row[0] in ("trained", "rejected") and row[1] == report["pairs"]
    assert row[2] == "models/embedder-v1"
    assert state in ([], [(None, 0)])  # nothing was switched


# Training, ONNX export and embedding on 2 shared cores: minutes under load.
@pytest.mark.timeout(1200)
def test_activation_refuses_a_model_that_is_worse_on_held_out_questions(
    db: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_kb(db)

    def broken_training(pairs: list[Any], corpus: Any, out_dir: Path, options: Options) -> dict[str, Any]:
        perturbed_model(out_dir, scale=3.0)  # weights drowned in noise: retrieval falls apart
        return {"steps": 0, "seconds": 0.0}

    def no_switch(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("a worse model must never be switched to")

    monkeypatch.setattr("lore.finetune_embedder.train_model", broken_training)
    monkeypatch.setattr("lore.embedder_switch.request_switch", no_switch)
    report = finetune_embedder(db, Options(max_pairs=200), activate=True)

    assert report["activated"] is False and report["better"] is False
    assert report["after"] < report["before"]
    assert "drop" in report["reason"] or "not above" in report["reason"]
    with raw_connection(db) as conn:
        status = conn.execute("SELECT status FROM embedder_models WHERE name = %s", (report["model"],)).fetchone()
        state = conn.execute("SELECT active, version FROM embedder_state").fetchall()
    assert status == ("rejected",)
    assert state in ([], [(None, 0)])
    # Asked directly, the switch refuses it too.
    with pytest.raises(SwitchError, match="did not beat"):
        switch_embedder(db, report["model"])
