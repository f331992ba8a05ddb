"""Where the corpus valley ships lives, and its versions: what runtime code needs of it, without the generator.

`valley/data/sample/` holds the sample corpus (`valley.data.sample_corpus` writes it) and `mini/`
under it the mini tier (`valley.data.mini_tier`).
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).parent / "sample"
MINI_SUBDIR = "mini"
FILES = ("taco.jsonl", "ocr2.jsonl", "lcb.jsonl")
CORPUS_VERSION = "valley-sample-1"
MINI_VERSION = "valley-mini-1"
#: spec `source` -> the packaged corpus directory it reads
PACKAGED = {"sample": SAMPLE_DIR, "mini": SAMPLE_DIR / MINI_SUBDIR}
#: spec `source` -> the version recorded as the corpus revision
PACKAGED_VERSION = {"sample": CORPUS_VERSION, "mini": MINI_VERSION}
