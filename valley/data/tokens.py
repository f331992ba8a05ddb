"""Token lengths of SFT examples under the student's own tokenizer and chat template.

Policy for examples longer than the training budget (`DataSpec.over_length`):

* `drop` (the paper's budget): the example is skipped and the next one in the seed's order
  takes its place, so the subset still has exactly `size` examples and stays nested.
* `truncate`: the example is kept whole in `train.jsonl`; torchtune's tokenizer, built with
  `max_seq_len`, cuts it at the budget during training. The manifest counts how many will be cut.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from valley.errors import ValleyError

#: files whose bytes define a tokenizer (its identity in the manifest)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


def load_tokenizer(tokenizer_dir: Path):
    """The student's fast tokenizer (Qwen2.5 and Llama 3.1 both ship tokenizer.json).

    Loaded as `PreTrainedTokenizerFast` rather than through AutoTokenizer, whose import of the
    model registry costs seconds and adds nothing to counting tokens.
    """
    from transformers import PreTrainedTokenizerFast

    if not (Path(tokenizer_dir) / "tokenizer.json").exists():
        raise ValleyError(
            f"--tokenizer: {tokenizer_dir} has no tokenizer.json; "
            "pass the student model directory (valley model fetch --preset P --out DIR)"
        )
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir))
    if not tokenizer.chat_template:
        raise ValleyError(
            f"--tokenizer: {tokenizer_dir} has no chat template; the student's template is needed "
            "to measure SFT examples as they are trained"
        )
    return tokenizer


def tokenizer_digest(tokenizer_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        path = Path(tokenizer_dir) / name
        if path.exists():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def count_tokens(tokenizer, conversations: list[list[dict]], cache: "LengthCache") -> list[int]:
    """Length in tokens of each conversation rendered with the tokenizer's chat template."""
    if not conversations:
        return []
    return cache.lengths(tokenizer, tokenizer.apply_chat_template(conversations, tokenize=False))


class LengthCache:
    """Token lengths by sha256 of the rendered text, one append-only jsonl per tokenizer.

    Nested subsets share their prefix (1k ⊂ 10k ⊂ 30k) and RQ2/RQ3 subsets draw from the 30k
    pool, so after the largest build the others tokenize almost nothing. Lines are appended
    whole; a torn last line is ignored, never trusted.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.known: dict[str, int] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    key, length = line.split()
                    self.known[key] = int(length)
                except ValueError:
                    continue

    def lengths(self, tokenizer, texts: list[str]) -> list[int]:
        keys = [hashlib.sha256(text.encode()).hexdigest()[:32] for text in texts]
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in self.known}
        if missing:
            encoded = tokenizer(list(missing.values()), add_special_tokens=False)["input_ids"]
            fresh = {key: len(ids) for key, ids in zip(missing, encoded, strict=True)}
            self.known.update(fresh)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as handle:
                handle.write("".join(f"{key} {length}\n" for key, length in fresh.items()))
        return [self.known[key] for key in keys]


def token_stats(lengths: list[int], max_seq_len: int, dropped: list[int] = ()) -> dict:
    """Histogram (power-of-two bins), quantiles and the share above the budget.

    `lengths` are the kept examples; `dropped` the lengths of the ones the drop policy skipped.
    """
    seen = sorted([*lengths, *dropped])
    if not seen:
        return {"examples": 0, "max_seq_len": max_seq_len}

    def quantile(q: float) -> int:
        return seen[min(len(seen) - 1, math.ceil(q * len(seen)) - 1)]

    histogram: dict[str, int] = {}
    for length in seen:
        upper = 1 << max(0, (length - 1).bit_length())
        histogram[f"<={upper}"] = histogram.get(f"<={upper}", 0) + 1
    above = sum(1 for length in seen if length > max_seq_len)
    return {
        "examples_seen": len(seen),
        "examples_kept": len(lengths),
        "max_seq_len": max_seq_len,
        "above_max_seq_len": above,
        "share_above_max_seq_len": round(above / len(seen), 6),
        "dropped": len(dropped),
        "truncated_in_training": sum(1 for length in lengths if length > max_seq_len),
        "tokens_kept": sum(lengths),
        "mean": round(sum(seen) / len(seen), 2),
        "p50": quantile(0.5),
        "p90": quantile(0.9),
        "p99": quantile(0.99),
        "max": seen[-1],
        "histogram": dict(sorted(histogram.items(), key=lambda item: int(item[0][2:]))),
    }
