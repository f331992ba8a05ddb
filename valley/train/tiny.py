"""Tiny students: random-init Qwen2 and Llama 3.1 at toy width, in Hugging Face format.

They let the whole path (data build → torchtune SFT → vLLM eval) run on a laptop CPU with
the real architectures, checkpoint formats and chat formats. Each is deterministic: the
same seed and corpus give the same bytes. The tokenizer is a byte-level BPE trained offline
on the packaged sample corpus, with the family's pre-tokenizer, special tokens and chat
template; its vocabulary is small so the model stays small.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from valley.chat import CHAT_TEMPLATES, NON_SPECIAL_ADDED, SPECIAL_TOKENS

SAMPLE_CORPUS = Path(__file__).resolve().parents[1] / "data" / "sample"
SEED = 1234


@dataclass(frozen=True)
class TinyArch:
    """Shape of a tiny student; read by both the HF builder here and the torchtune config."""

    family: str
    vocab_size: int
    embed_dim: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_dim: int
    #: positions the model supports (the real model's value; RoPE tables only)
    max_seq_len: int
    norm_eps: float
    rope_base: float
    tie_word_embeddings: bool

    @property
    def head_dim(self) -> int:
        # vLLM's CPU attention accepts head_dim in {32, 64, 80, ...}
        return self.embed_dim // self.num_heads


TINY_ARCH: dict[str, TinyArch] = {
    # Qwen2.5 small sizes (0.5B-3B) tie embeddings; 7B does not. Tying exercises torchtune's tied path.
    "qwen2_5": TinyArch(
        "qwen2_5",
        vocab_size=2048,
        embed_dim=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_dim=384,
        max_seq_len=32768,
        norm_eps=1e-6,
        rope_base=1_000_000.0,
        tie_word_embeddings=True,
    ),
    "llama3_1": TinyArch(
        "llama3_1",
        vocab_size=2048,
        embed_dim=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_dim=384,
        max_seq_len=131072,
        norm_eps=1e-5,
        rope_base=500_000.0,
        tie_word_embeddings=False,
    ),
}

#: the real tokenizers' pre-tokenization regexes (Llama 3 groups digits in threes, Qwen splits each digit)
_SPLIT_PATTERN = {
    "qwen2_5": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "llama3_1": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}

#: used only while the packaged sample corpus is absent (a source checkout before it is generated)
_FALLBACK_TEXT = (
    "def solve():\n    n = int(input())\n    a = list(map(int, input().split()))\n    print(sum(a))\n\n"
    "<think>\nThe answer is the sum of the numbers, so read them and add them up.\n</think>\n"
    "```python\nimport sys\nfor line in sys.stdin:\n    print(len(line.strip()))\n```\n"
)


def corpus_texts(corpus_dir: Path = SAMPLE_CORPUS) -> list[str]:
    """Every text value of the sample corpus rows (its mini tier included), in file and row order."""
    texts: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, str):
            if len(value) <= 64 or any(c.isspace() for c in value):  # skip blobs (LCB's encoded private tests)
                texts.append(value)
        elif isinstance(value, dict):
            for key in sorted(value):
                collect(value[key])
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for path in sorted(corpus_dir.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                collect(json.loads(line))
    return texts or [_FALLBACK_TEXT]


# --------------------------------------------------------------------------- tokenizer


def train_tokenizer(family: str, texts: list[str], vocab_size: int):
    """A byte-level BPE with the family's pre-tokenizer; the special tokens follow the learned vocabulary."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    specials = SPECIAL_TOKENS[family]
    tokenizer = Tokenizer(models.BPE())
    if family == "qwen2_5":
        tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_PATTERN[family]), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(specials),
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.add_special_tokens(
        [AddedToken(token, special=token not in NON_SPECIAL_ADDED, normalized=False) for token in specials]
    )
    byte_level = processors.ByteLevel(trim_offsets=False)
    if family == "llama3_1":  # Llama 3's tokenizer prepends <|begin_of_text|> when asked for special tokens
        bos = "<|begin_of_text|>"
        tokenizer.post_processor = processors.Sequence(
            [
                byte_level,
                processors.TemplateProcessing(
                    single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.token_to_id(bos))]
                ),
            ]
        )
    else:
        tokenizer.post_processor = byte_level
    return tokenizer


def tokenizer_config(family: str, tokenizer) -> dict:
    """tokenizer_config.json as the real instruct repos ship it (chat template included)."""
    added = {
        str(tokenizer.token_to_id(token)): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": token not in NON_SPECIAL_ADDED,
        }
        for token in SPECIAL_TOKENS[family]
    }
    common = {"added_tokens_decoder": added, "chat_template": CHAT_TEMPLATES[family], "model_max_length": 131072}
    if family == "qwen2_5":
        return {
            **common,
            "add_bos_token": False,
            "add_prefix_space": False,
            "bos_token": None,
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|im_end|>",
            "errors": "replace",
            "pad_token": "<|endoftext|>",
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        }
    return {
        **common,
        "bos_token": "<|begin_of_text|>",
        "clean_up_tokenization_spaces": True,
        "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def special_ids(family: str, tokenizer) -> dict:
    """bos/eos/pad ids for config.json and generation_config.json, as in the real repos."""
    tid = tokenizer.token_to_id
    if family == "qwen2_5":
        return {
            "bos": tid("<|endoftext|>"),
            "eos": tid("<|im_end|>"),
            "pad": tid("<|endoftext|>"),
            "stop": [tid("<|im_end|>"), tid("<|endoftext|>")],
        }
    return {
        "bos": tid("<|begin_of_text|>"),
        "eos": [tid("<|end_of_text|>"), tid("<|eom_id|>"), tid("<|eot_id|>")],
        "pad": None,
        "stop": [tid("<|end_of_text|>"), tid("<|eom_id|>"), tid("<|eot_id|>")],
    }


def generation_config(family: str, ids: dict) -> dict:
    """The real instruct repos' sampling defaults (evaluation always sends its own)."""
    if family == "qwen2_5":
        return {
            "bos_token_id": ids["bos"],
            "do_sample": True,
            "eos_token_id": ids["stop"],
            "pad_token_id": ids["pad"],
            "repetition_penalty": 1.05,
            "temperature": 0.7,
            "top_k": 20,
            "top_p": 0.8,
        }
    return {
        "bos_token_id": ids["bos"],
        "do_sample": True,
        "eos_token_id": ids["stop"],
        "temperature": 0.6,
        "top_p": 0.9,
    }


# ------------------------------------------------------------------------------- model


def hf_config(arch: TinyArch, ids: dict, dtype: str = "float32"):
    from transformers import LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=arch.vocab_size,
        hidden_size=arch.embed_dim,
        intermediate_size=arch.intermediate_dim,
        num_hidden_layers=arch.num_layers,
        num_attention_heads=arch.num_heads,
        num_key_value_heads=arch.num_kv_heads,
        max_position_embeddings=arch.max_seq_len,
        rms_norm_eps=arch.norm_eps,
        tie_word_embeddings=arch.tie_word_embeddings,
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        dtype=dtype,
    )
    if arch.family == "qwen2_5":
        return Qwen2Config(
            **common,
            rope_parameters={"rope_type": "default", "rope_theta": arch.rope_base},
            use_sliding_window=False,
            max_window_layers=arch.num_layers,
            architectures=["Qwen2ForCausalLM"],
        )
    return LlamaConfig(
        **common,
        head_dim=arch.head_dim,
        architectures=["LlamaForCausalLM"],
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": arch.rope_base,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    )


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_tokenizer(family: str, out_dir: Path, vocab_size: int, corpus_dir: Path = SAMPLE_CORPUS):
    """The family's tokenizer files as the real repo ships them (tokenizer.json, Qwen's vocab.json +
    merges.txt, tokenizer_config.json with the chat template, special_tokens_map.json); returns the
    tokenizer. Trained offline on the sample corpus, so nothing is downloaded."""
    tokenizer = train_tokenizer(family, corpus_texts(corpus_dir), vocab_size)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    tokenizer.model.save(str(out_dir))  # vocab.json + merges.txt, as the real Qwen repo ships them
    if family == "llama3_1":  # the real Llama repo ships only tokenizer.json
        (out_dir / "vocab.json").unlink()
        (out_dir / "merges.txt").unlink()
    config = tokenizer_config(family, tokenizer)
    _write_json(out_dir / "tokenizer_config.json", config)
    _write_json(
        out_dir / "special_tokens_map.json",
        {k: v for k, v in config.items() if k in ("bos_token", "eos_token", "pad_token") and v},
    )
    return tokenizer


def build_tiny(family: str, out_dir: Path, *, seed: int = SEED, corpus_dir: Path = SAMPLE_CORPUS) -> Path:
    """Write a tiny HF-format student for `family` into out_dir (created; must not exist)."""
    import torch
    from transformers import AutoModelForCausalLM

    arch = TINY_ARCH[family]
    out_dir.mkdir(parents=True)
    tokenizer = write_tokenizer(family, out_dir, arch.vocab_size, corpus_dir)
    ids = special_ids(family, tokenizer)
    config = hf_config(arch, ids)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out_dir)
    _write_json(out_dir / "generation_config.json", generation_config(family, ids))
    return out_dir
