"""The TRL exports train as-is: SFTTrainer, DPOTrainer and KTOTrainer run two optimizer steps on each.

The model and tokenizer are built here, tiny and random (nothing is downloaded): a 2-layer Llama and a
byte-level BPE tokenizer trained on the exported text, with a plain chat template. It needs the [train] extra
(trl, transformers, datasets, accelerate): without it the imports fail, loudly, rather than skip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import trl

from lore.config import Settings
from lore.exports import export_to_files
from lore.feedback import record_comparison, record_critique, record_vote
from tests.feedback.helpers import add_answer

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIALS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]


def _seed(settings: Settings) -> None:
    rng = np.random.default_rng(0)
    for i in range(8):
        vec = rng.normal(size=384).astype(np.float32)
        question = f"How do I configure service {i}? Ask <@U0{i}ABC>."
        prompt = [
            {"role": "system", "content": "You are Lore. Answer from the sources, cite like [1]."},
            {
                "role": "user",
                "content": f'<documents>\n<source id="1">Service {i} reads config{i}.toml.</source>\n'
                f"</documents>\n\nQuestion: {question}",
            },
            {"role": "assistant", "content": f"Edit config{i}.toml [1]."},
        ]
        good = add_answer(
            settings,
            question=question,
            answer=f"Edit config{i}.toml [1].",
            prompt=prompt,
            message_ts=f"{i}.1",
            embedding=vec / np.linalg.norm(vec),
        )
        bad = add_answer(
            settings,
            question=question,
            answer="I don't know.",
            message_ts=f"{i}.2",
            thread_ts=f"{i}.1",
            parent_id=good,
            embedding=vec / np.linalg.norm(vec),
            prompt=[*prompt[:2], {"role": "assistant", "content": "I don't know."}],
        )
        record_vote(settings, answer_id=good, user_id="U1", value=1, via="reaction")
        record_vote(settings, answer_id=bad, user_id="U1", value=-1, via="reaction")
        record_comparison(settings, chosen_id=good, rejected_id=bad, user_id="U1")
        if i % 2:
            record_critique(
                settings,
                answer_id=bad,
                user_id="U2",
                critique="it does know",
                correction=f"Service {i} is configured in config{i}.toml.",
            )


def _tokenizer(texts: list[str]) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<|pad|>", eos_token="<|end|>", bos_token="<|end|>")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _model(tokenizer: Any) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    return LlamaForCausalLM(config)


def _common(tmp: Path) -> dict[str, Any]:
    return {
        "output_dir": str(tmp / "out"),
        "max_steps": 2,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "report_to": [],
        "save_strategy": "no",
        "logging_steps": 1,
        "use_cpu": True,
        "bf16": False,
        "dataloader_num_workers": 0,
        "seed": 0,
    }


def _texts(rows: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(r) for r in rows]


def _steps(trainer: Any) -> int:
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 2 and all(np.isfinite(losses)), trainer.state.log_history
    return int(trainer.state.global_step)


def test_trl_trainers_run_on_the_exports(db: Settings, tmp_path: Path) -> None:
    _seed(db)
    files: dict[str, Path] = {}
    for fmt in ("trl-sft", "trl-dpo", "trl-kto"):
        files[fmt] = tmp_path / f"{fmt}.jsonl"
        report = export_to_files(db, fmt, files[fmt])
        assert report["train"] >= 8
    rows = {fmt: [json.loads(x) for x in path.read_text().splitlines()] for fmt, path in files.items()}
    tokenizer = _tokenizer([t for r in rows.values() for t in _texts(r)])

    sft_data = datasets.load_dataset(
        "json", data_files=str(files["trl-sft"]), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert sft_data.column_names == ["messages"]
    sft = trl.SFTTrainer(
        model=_model(tokenizer),
        processing_class=tokenizer,
        train_dataset=sft_data,
        args=trl.SFTConfig(**_common(tmp_path / "sft"), max_length=256),
    )
    assert _steps(sft) == 2

    dpo_data = datasets.load_dataset(
        "json", data_files=str(files["trl-dpo"]), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert sorted(dpo_data.column_names) == ["chosen", "prompt", "rejected"]
    # The reference model is passed in: by default TRL reloads it by name from the Hub.
    dpo = trl.DPOTrainer(
        model=_model(tokenizer),
        ref_model=_model(tokenizer),
        processing_class=tokenizer,
        train_dataset=dpo_data,
        args=trl.DPOConfig(**_common(tmp_path / "dpo"), max_length=256),
    )
    assert _steps(dpo) == 2

    kto_data = datasets.load_dataset(
        "json", data_files=str(files["trl-kto"]), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert sorted(kto_data.column_names) == ["completion", "label", "prompt"]
    assert set(kto_data["label"]) == {True, False}
    kto = trl.KTOTrainer(
        model=_model(tokenizer),
        ref_model=_model(tokenizer),
        processing_class=tokenizer,
        train_dataset=kto_data,
        args=trl.KTOConfig(**_common(tmp_path / "kto"), max_length=256),
    )
    assert _steps(kto) == 2
