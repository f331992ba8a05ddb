"""Drawing the paper's subsets: nested random (RQ1), correct/incorrect (RQ2), easy/hard (RQ3).

Every draw ranks its candidates by sha256(seed, example id) and takes a prefix. Ranking by a
per-id hash, rather than shuffling a list, makes a subset depend only on the seed and which
ids are candidates, never on row order; and a smaller size is always a prefix of a larger one,
so 1k ⊂ 10k ⊂ 30k holds by construction for any list of sizes.

RQ2 and RQ3 draw from the TACO-sourced examples of the study's parent pool (the paper's 13,583
TACO-sourced examples of its 30k set): the random subset of `PARENT_POOL[source]` examples with
the same seed (`None`: the whole corpus).
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

from valley.errors import ValleyError

#: size of the random subset whose TACO-sourced examples RQ2/RQ3 draw from
PARENT_POOL: dict[str, int | None] = {"ocr2": 30_000, "sample": None, "mini": None}


def rank(ids: Iterable[str], seed: int) -> list[str]:
    """Candidates in the seed's order: sorted by sha256(f"{seed}/{id}")."""
    return sorted(ids, key=lambda i: hashlib.sha256(f"{seed}/{i}".encode()).digest())


def parent_ids(ids: Iterable[str], source: str, seed: int) -> list[str]:
    """The parent pool of RQ2/RQ3 subsets: the first PARENT_POOL[source] ids of the ranking."""
    size = PARENT_POOL[source]
    ordered = rank(ids, seed)
    return ordered if size is None else ordered[:size]


def subset_candidates(
    kind: str, taco_ids: Sequence[str], labels: dict[str, str], difficulty: dict[str, str | None]
) -> list[str]:
    """The TACO-sourced ids a controlled subset may draw from.

    correct/incorrect: labelled by grading (`infra_error` rows are in neither);
    easy/hard: by the TACO difficulty class, so the two are disjoint by construction.
    """
    if kind in ("correct", "incorrect"):
        return [i for i in taco_ids if labels.get(i) == kind]
    if kind in ("easy", "hard"):
        return [i for i in taco_ids if difficulty.get(i) == kind]
    raise ValueError(f"subset: {kind!r} is not a controlled subset")


def require_pool(size: int, available: int, kind: str, detail: str) -> None:
    if size > available:
        raise ValleyError(
            f"data.size: the {kind} subset needs {size} examples but its pool has {available} "
            f"({detail}); use data.size <= {available}"
        )
