"""Fixtures for the data tests: a small real tokenizer with a ChatML template, and run specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from manager.study import MINI_TRAIN
from valley.spec import DataSpec, RunSpec

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(out: Path) -> Path:
    """A byte-level BPE (vocab 400) trained on the sample corpus, saved as an HF tokenizer dir."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from valley.data.packaged import SAMPLE_DIR

    texts = [json.loads(line)["r1_generation"] for line in (SAMPLE_DIR / "ocr2.jsonl").read_text().splitlines()]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokenizer.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.save_pretrained(out)
    tokenizer.model.save(str(out))  # vocab.json + merges.txt, what torchtune's Qwen2.5 tokenizer reads
    return out


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def run_spec(
    size: int,
    subset: str = "random",
    seed: int = 42,
    over_length: str = "truncate",
    max_seq_len: int | None = None,
    source: str = "sample",
) -> RunSpec:
    train = MINI_TRAIN if max_seq_len is None else MINI_TRAIN.model_copy(update={"max_seq_len": max_seq_len})
    data = DataSpec(source=source, size=size, subset=subset, seed=seed, over_length=over_length)
    return RunSpec(study="mini", model="tiny-qwen", data=data, train=train)


@pytest.fixture
def write_spec(tmp_path: Path):
    """write_spec(size, subset=..., ...) -> path of a RunSpec JSON file, as the control plane writes it."""

    def write(*args, **kwargs) -> Path:
        spec = run_spec(*args, **kwargs)
        path = tmp_path / f"run-{spec.spec_hash}.json"
        path.write_text(spec.to_json())
        return path

    return write
