"""`lore finetune openai` and `lore finetune status` against a local fake of the files and fine-tuning endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lore.config import Settings
from lore.feedback import record_comparison, record_vote
from lore.finetune import FinetuneError, start_openai_finetune
from tests.fakes.openai_files import FakeOpenAIFiles
from tests.feedback.helpers import add_answer

LORE = [sys.executable, "-m", "lore.cli"]


def _vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=384).astype(np.float32)
    return v / np.linalg.norm(v)


def _seed_feedback(settings: Settings, n: int) -> None:
    for i in range(n):
        prompt = [
            {"role": "system", "content": "You are Lore."},
            {"role": "user", "content": f"<documents>doc {i}</documents>\n\nQuestion: q{i}? mail me at a{i}@corp.com"},
            {"role": "assistant", "content": f"good {i}"},
        ]
        good = add_answer(
            settings, question=f"q{i}?", answer=f"good {i}", prompt=prompt, message_ts=f"{i}.1", embedding=_vec(i)
        )
        bad = add_answer(
            settings,
            question=f"q{i}?",
            answer=f"bad {i}",
            message_ts=f"{i}.2",
            thread_ts=f"{i}.1",
            parent_id=good,
            embedding=_vec(i),
        )
        record_vote(settings, answer_id=good, user_id="U1", value=1, via="button")
        record_comparison(settings, chosen_id=good, rejected_id=bad, user_id="U1")


def _env(fake: FakeOpenAIFiles) -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": "sk-test-not-a-real-key-000000", "OPENAI_BASE_URL": fake.base_url}


def test_cli_starts_a_dpo_job_and_follows_it(db: Settings, fake_openai_files: FakeOpenAIFiles) -> None:
    _seed_feedback(db, 24)
    run = subprocess.run(
        [*LORE, "finetune", "openai", "--method", "dpo", "--model", "gpt-4o-mini-2024-07-18", "--json"],
        capture_output=True,
        text=True,
        env=_env(fake_openai_files),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    job = json.loads(run.stdout)
    assert job["id"] == "ftjob-0001" and job["method"] == "dpo"

    uploads = fake_openai_files.requests_to("POST", "/v1/files")
    assert len(uploads) == 2  # training and validation files
    assert all(u.body["fields"]["purpose"] == "fine-tune" for u in uploads)
    assert uploads[0].headers["authorization"] == "Bearer sk-test-not-a-real-key-000000"
    lines = [json.loads(x) for x in uploads[0].body["file"].decode().splitlines()]
    eval_lines = uploads[1].body["file"].decode().splitlines()
    assert len(lines) + len(eval_lines) == 24 and len(eval_lines) > 0
    assert set(lines[0]) == {"input", "preferred_output", "non_preferred_output"}
    assert "@corp.com" not in uploads[0].body["file"].decode()

    (create,) = fake_openai_files.requests_to("POST", "/v1/fine_tuning/jobs")
    assert create.body == {
        "model": "gpt-4o-mini-2024-07-18",
        "training_file": "file-0001",
        "validation_file": "file-0002",
        "method": {"type": "dpo"},
        "suffix": "lore",
    }

    first = subprocess.run(
        [*LORE, "finetune", "status", "--json"], capture_output=True, text=True, env=_env(fake_openai_files), timeout=60
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)[0]["status"] == "running"
    second = subprocess.run(
        [*LORE, "finetune", "status"], capture_output=True, text=True, env=_env(fake_openai_files), timeout=60
    )
    assert "succeeded" in second.stdout and "LORE_CHAT_MODEL=ft:gpt-4o-mini-2024-07-18:lore:lore:0001" in second.stdout
    assert [r.path for r in fake_openai_files.requests_to("GET", "/v1/fine_tuning/jobs")] == [
        "/v1/fine_tuning/jobs/ftjob-0001"
    ] * 2


def test_sft_job_in_process_and_too_little_data(db: Settings, fake_openai_files: FakeOpenAIFiles) -> None:
    from openai import OpenAI

    client = OpenAI(api_key="sk-test", base_url=fake_openai_files.base_url)
    _seed_feedback(db, 5)
    with pytest.raises(FinetuneError, match="at least 10"):
        start_openai_finetune(db, method="sft", client=client)
    assert fake_openai_files.requests == []
    _seed_feedback(db, 0)
    for i in range(5, 16):
        _seed_feedback_one = add_answer(db, question=f"x{i}", answer=f"ok {i}", message_ts=f"x{i}", embedding=_vec(i))
        record_vote(db, answer_id=_seed_feedback_one, user_id="U2", value=1, via="button")
    job = start_openai_finetune(db, method="sft", model="gpt-4.1-mini", eval_fraction=0.0, client=client)
    assert job["examples"] == 16 and job["method"] == "supervised"
    (create,) = fake_openai_files.requests_to("POST", "/v1/fine_tuning/jobs")
    assert create.body == {
        "model": "gpt-4.1-mini",
        "training_file": "file-0001",
        "method": {"type": "supervised"},
        "suffix": "lore",
    }
    (upload,) = fake_openai_files.requests_to("POST", "/v1/files")
    assert all(set(json.loads(x)) == {"messages"} for x in upload.body["file"].decode().splitlines())


def test_cli_without_a_key_says_so(db: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    run = subprocess.run([*LORE, "finetune", "status"], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 2 and "OPENAI_API_KEY is required" in run.stderr
