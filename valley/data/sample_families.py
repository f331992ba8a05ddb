"""The sample corpus's task families: the data its problems, reference programs and wrong programs come from.

Each family is a task with a parameter (each value is a separate problem): its statement, the idea a
teacher states, the reference function body, plausible wrong bodies with the flawed idea behind each,
and an input generator plus edge cases. The bodies are program text kept verbatim (long lines
included): the shipped corpus is generated from them byte for byte. `valley.data.sample_corpus`
turns them into rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Family:
    """A task with a parameter: each parameter value is a separate problem."""

    key: str
    difficulty: str  # TACO label
    kind: str  # input shape: list | int | str | list_k | two_str
    out: str  # output shape: int | str | list
    fn: str
    sig: str
    params: tuple
    title: Callable[[object], str]
    statement: Callable[[object], str]
    idea: Callable[[object], str]
    correct: Callable[[object], str]  # function body
    wrong: Callable[[object], list[tuple[str, str]]]  # (body, flawed idea)
    gen: Callable[[random.Random, object], tuple]
    edge: Callable[[object], list[tuple]] = lambda p: []
    tags: tuple[str, ...] = ("Implementation",)


def _ints(rng: random.Random, lo: int, hi: int, n_lo: int = 1, n_hi: int = 10) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(n_lo, n_hi))]


def _word(rng: random.Random, alphabet: str, lo: int = 1, hi: int = 12) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


_OPS = {"-": "minus", "+": "plus", "*": "times"}
_RUNS = {"equal": "==", "increasing": ">", "non-decreasing": ">="}
_WORD_OPS = {
    "reverse the order of the words": (
        "return ' '.join(reversed(s.split()))",
        "return s[::-1]",
        "I can just reverse the whole string.",
    ),
    "reverse every word but keep their order": (
        "return ' '.join(w[::-1] for w in s.split())",
        "return ' '.join(reversed(s.split()))",
        "Reversing the list of words should do it.",
    ),
    "move the first letter of every word to its end": (
        "return ' '.join(w[1:] + w[0] for w in s.split())",
        "return ' '.join(w[-1] + w[:-1] for w in s.split())",
        "Rotate each word by taking the last letter to the front.",
    ),
    "sort the words alphabetically": (
        "return ' '.join(sorted(s.split()))",
        "return ' '.join(sorted(s.split(), key=len))",
        "Sorting the words by their length is enough.",
    ),
}
_SUBSEQUENCES = {
    "increasing": ("strictly increasing", "<"),
    "non-decreasing": ("non-decreasing", "<="),
    "decreasing": ("strictly decreasing", ">"),
}
_COINS = ((1, 3, 4), (1, 5, 6, 9), (1, 7, 10), (1, 4, 5), (2, 5, 6), (2, 3, 7))
_BRACKETS = ("()", "()[]", "()[]{}", "[]{}")


def families() -> list[Family]:
    """The 23 families, in corpus order (the order numbers the TACO rows and LCB problems)."""
    return [
        Family(
            "sum_multiples",
            "EASY",
            "list",
            "int",
            "sum_multiples",
            "nums",
            (3, 5, 7, 4, 6),
            title=lambda k: f"Multiples of {k}",
            statement=lambda k: (
                f"Given a list of integers, print the sum of the elements that are divisible by {k}. "
                "Negative numbers and zero can appear; zero is divisible by every number."
            ),
            idea=lambda k: (
                f"A number x is a multiple of {k} exactly when x % {k} == 0, and in Python that also holds "
                "for negative x, so I just filter and sum."
            ),
            correct=lambda k: f"return sum(x for x in nums if x % {k} == 0)",
            wrong=lambda k: [
                (
                    f"return sum(x for x in nums if x % {k} == 0 and x > 0)",
                    "Only positive multiples should count, so I skip zero and negatives.",
                ),
                (
                    f"total = 0\nfor i in range(1, len(nums)):\n    if nums[i] % {k} == 0:\n        total += nums[i]\nreturn total",
                    "Loop over the indices and add the multiples.",
                ),
            ],
            gen=lambda rng, k: (_ints(rng, -30, 30),),
            edge=lambda k: [([k, 1, -k],), ([-2 * k, 1],), ([0],)],
            tags=("Mathematics",),
        ),
        Family(
            "count_in_set",
            "EASY",
            "str",
            "int",
            "count_letters",
            "s",
            ("aeiou", "xyz", "abc", "mnop", "qrst"),
            title=lambda chars: f"Counting {chars}",
            statement=lambda chars: (
                f"Given a string of lowercase letters, count how many of its characters are one of "
                f"the letters '{chars}'. Every occurrence counts, repeated letters too."
            ),
            idea=lambda chars: f"Walk over the string and count each character that is in '{chars}'.",
            correct=lambda chars: f"return sum(1 for ch in s if ch in '{chars}')",
            wrong=lambda chars: [
                (
                    f"return sum(1 for ch in set(s) if ch in '{chars}')",
                    "Use a set of the characters so each letter is checked once.",
                ),
                (
                    f"return sum(1 for ch in s[:-1] if ch in '{chars}')",
                    "Count matching characters; the last character is the newline so skip it.",
                ),
            ],
            gen=lambda rng, chars: (_word(rng, "abcdefghijklmnopqrstuvwxyz", 3, 20),),
            edge=lambda chars: [(chars[0] * 3,), ("b" + chars[-1],)],
            tags=("String algorithms",),
        ),
        Family(
            "spread",
            "EASY",
            "list",
            "int",
            "spread",
            "nums",
            ("-", "+", "*"),
            title=lambda op: f"Largest {_OPS[op]} smallest",
            statement=lambda op: (
                f"Given a list of integers, print the largest element {_OPS[op]} the smallest element."
            ),
            idea=lambda op: f"Take max(nums) and min(nums) and combine them with {op}.",
            correct=lambda op: f"return max(nums) {op} min(nums)",
            wrong=lambda op: [
                (f"return nums[-1] {op} nums[0]", "The last element is the largest and the first the smallest."),
                (f"return max(nums) {op} nums[0]", "The first element is the smallest one."),
            ],
            gen=lambda rng, op: (_ints(rng, -20, 40, 2, 9),),
            edge=lambda op: [([5, 1, 3],), ([2, 9, -4, 7],)],
        ),
        Family(
            "digit_sum",
            "EASY",
            "int",
            "int",
            "digit_sum",
            "n",
            (10, 2, 8, 3, 5),
            title=lambda b: f"Digit sum in base {b}",
            statement=lambda b: (
                f"Given a non-negative integer n, print the sum of the digits of n written in base {b}."
            ),
            idea=lambda b: f"Repeatedly take n % {b} as the last digit and divide n by {b} until it is zero.",
            correct=lambda b: f"total = 0\nwhile n > 0:\n    total += n % {b}\n    n //= {b}\nreturn total",
            wrong=lambda b: [
                (
                    f"total = 0\nwhile n >= {b}:\n    total += n % {b}\n    n //= {b}\nreturn total",
                    f"Peel digits off while n is at least {b}.",
                ),
                (
                    ("return sum(int(c) for c in str(n)[1:])", "Sum the characters after the first one.")
                    if b == 10
                    else ("return sum(int(c) for c in str(n))", "Summing the decimal digits gives the answer.")
                ),
            ],
            gen=lambda rng, b: (rng.randint(0, 10**6),),
            edge=lambda b: [(b + 1,), (7,), (b * b + b - 1,)],
            tags=("Mathematics",),
        ),
        Family(
            "above_average",
            "EASY",
            "list",
            "int",
            "count_vs_average",
            "nums",
            (">", "<", ">="),
            title=lambda op: "Above average" if op != "<" else "Below average",
            statement=lambda op: (
                "Given a list of integers, print how many elements are "
                + {">": "strictly greater than", "<": "strictly smaller than", ">=": "at least"}[op]
                + " the average of the list (the average need not be an integer)."
            ),
            idea=lambda op: f"Avoid floating point: x {op} sum/n is the same as x * n {op} sum.",
            correct=lambda op: f"total = sum(nums)\nreturn sum(1 for x in nums if x * len(nums) {op} total)",
            wrong=lambda op: [
                (
                    f"avg = round(sum(nums) / len(nums))\nreturn sum(1 for x in nums if x {op} avg)",
                    "Round the average to the nearest integer and compare.",
                ),
                (
                    f"ordered = sorted(nums)\nmid = ordered[len(ordered) // 2]\nreturn sum(1 for x in nums if x {op} mid)",
                    "The middle element of the sorted list is the average.",
                ),
            ],
            gen=lambda rng, op: (_ints(rng, -10, 50, 2, 10),),
            edge=lambda op: [([1, 2],), ([2, 2, 2, 3, 3],), ([1, 1, 10],)],
        ),
        Family(
            "word_ops",
            "EASY",
            "str",
            "str",
            "transform",
            "s",
            tuple(_WORD_OPS),
            title=lambda op: op.capitalize(),
            statement=lambda op: (
                f"Given a line of lowercase words separated by single spaces, {op} and print the result."
            ),
            idea=lambda op: "Split on spaces, transform, and join with single spaces.",
            correct=lambda op: _WORD_OPS[op][0],
            wrong=lambda op: [(_WORD_OPS[op][1], _WORD_OPS[op][2])],
            gen=lambda rng, op: (" ".join(_word(rng, "abcdefgh", 2, 6) for _ in range(rng.randint(2, 6))),),
            edge=lambda op: [("ab cd",), ("abc de fgh",), ("zz ab",)],
            tags=("String algorithms",),
        ),
        Family(
            "kth_distinct",
            "MEDIUM",
            "list",
            "int",
            "kth_distinct",
            "nums",
            ("second largest", "second smallest", "third largest", "third smallest"),
            title=lambda p: p.capitalize() + " distinct value",
            statement=lambda p: (
                f"Given a list of integers with at least three distinct values, print the {p} distinct value."
            ),
            idea=lambda p: "Duplicates must not count twice, so deduplicate with a set before sorting.",
            correct=lambda p: {
                "second largest": "return sorted(set(nums))[-2]",
                "second smallest": "return sorted(set(nums))[1]",
                "third largest": "return sorted(set(nums))[-3]",
                "third smallest": "return sorted(set(nums))[2]",
            }[p],
            wrong=lambda p: [
                (
                    {
                        "second largest": "return sorted(nums)[-2]",
                        "second smallest": "return sorted(nums)[1]",
                        "third largest": "return sorted(nums)[-3]",
                        "third smallest": "return sorted(nums)[2]",
                    }[p],
                    "Sort the list and index into it.",
                ),
                (
                    "ordered = sorted(set(nums))\nreturn ordered[len(ordered) // 2]",
                    "The wanted value sits in the middle of the distinct values.",
                ),
            ],
            gen=lambda rng, p: (_ints(rng, 0, 9, 4, 12) + [10, 11, 12],),
            edge=lambda p: [([5, 5, 4, 3, 3],), ([1, 2, 3, 3, 3, 9, 9],)],
            tags=("Sorting",),
        ),
        Family(
            "best_subarray",
            "MEDIUM",
            "list",
            "int",
            "best_subarray",
            "nums",
            ("maximum", "minimum"),
            title=lambda p: f"{p.capitalize()} subarray sum",
            statement=lambda p: f"Given a list of integers, print the {p} sum of a non-empty contiguous subarray.",
            idea=lambda p: "Kadane's algorithm: keep the best sum of a subarray ending here, extend or restart.",
            correct=lambda p: (
                "best = cur = nums[0]\nfor x in nums[1:]:\n    cur = max(x, cur + x)\n    best = max(best, cur)\nreturn best"
                if p == "maximum"
                else "best = cur = nums[0]\nfor x in nums[1:]:\n    cur = min(x, cur + x)\n    best = min(best, cur)\nreturn best"
            ),
            wrong=lambda p: [
                (
                    (
                        "best = cur = 0\nfor x in nums:\n    cur = max(0, cur + x)\n    best = max(best, cur)\nreturn best"
                        if p == "maximum"
                        else "best = cur = 0\nfor x in nums:\n    cur = min(0, cur + x)\n    best = min(best, cur)\nreturn best"
                    ),
                    "Classic Kadane with the running sum clamped at zero.",
                ),
                (f"return {'max' if p == 'maximum' else 'min'}(nums)", "The answer is always a single element."),
            ],
            gen=lambda rng, p: (_ints(rng, -10, 10, 1, 12),),
            edge=lambda p: [([-3, -1, -2],), ([2, 3, 1],), ([4, -1, 5],), ([-4, 1, -5],)],
            tags=("Dynamic programming",),
        ),
        Family(
            "longest_run",
            "MEDIUM",
            "list",
            "int",
            "longest_run",
            "nums",
            tuple(_RUNS),
            title=lambda p: f"Longest {p} run",
            statement=lambda p: (
                f"Given a list of integers, print the length of the longest contiguous run in which each "
                f"element is {'equal to' if p == 'equal' else ('greater than' if p == 'increasing' else 'at least')} the one before it."
            ),
            idea=lambda p: "Scan once, extending the current run or starting a new one, and track the best length.",
            correct=lambda p: (
                f"best = cur = 1\nfor i in range(1, len(nums)):\n    cur = cur + 1 if nums[i] {_RUNS[p]} nums[i - 1] else 1\n"
                "    best = max(best, cur)\nreturn best"
            ),
            wrong=lambda p: [
                (
                    f"best = cur = 1\nfor i in range(1, len(nums)):\n    if nums[i] {_RUNS[p]} nums[i - 1]:\n        cur += 1\n"
                    "    else:\n        best = max(best, cur)\n        cur = 1\nreturn best",
                    "Update the best length whenever a run ends.",
                ),
                (
                    f"return 1 + sum(1 for i in range(1, len(nums)) if nums[i] {_RUNS[p]} nums[i - 1])",
                    "Count positions that continue a run.",
                ),
            ],
            gen=lambda rng, p: (_ints(rng, 0, 4, 1, 14),),
            edge=lambda p: [([1, 2, 2, 3, 3, 3],), ([5, 1, 2, 3, 4],), ([4, 1, 1, 1],)],
        ),
        Family(
            "count_primes",
            "MEDIUM",
            "int",
            "int",
            "count_primes",
            "n",
            ("<=", "<", "twin", "palindromic"),
            title=lambda p: {
                "<=": "Primes up to n",
                "<": "Primes below n",
                "twin": "Twin prime pairs",
                "palindromic": "Palindromic primes",
            }[p],
            statement=lambda p: {
                "<=": "Given n, print how many primes are at most n.",
                "<": "Given n, print how many primes are strictly less than n.",
                "twin": "Given n, print how many pairs (p, p + 2) with both numbers prime and p + 2 <= n exist.",
                "palindromic": "Given n, print how many primes at most n read the same forwards and backwards.",
            }[p],
            idea=lambda p: "A sieve of Eratosthenes up to n marks the primes; 0 and 1 are not prime.",
            correct=lambda p: (
                "limit = n + 1\nsieve = [True] * max(limit, 2)\nsieve[0] = sieve[1] = False\n"
                "for i in range(2, int(limit ** 0.5) + 1):\n    if sieve[i]:\n        for j in range(i * i, limit, i):\n"
                "            sieve[j] = False\nprimes = [i for i in range(limit) if sieve[i]]\n"
                + {
                    "<=": "return len(primes)",
                    "<": "return sum(1 for q in primes if q < n)",
                    "twin": "found = set(primes)\nreturn sum(1 for q in primes if q + 2 in found)",
                    "palindromic": "return sum(1 for q in primes if str(q) == str(q)[::-1])",
                }[p]
            ),
            wrong=lambda p: [
                (
                    "count = 0\nfor x in range(1, n + 1):\n    if all(x % d for d in range(2, int(x ** 0.5))):\n        count += 1\n"
                    + {
                        "<=": "return count",
                        "<": "return count - (1 if n >= 1 else 0)",
                        "twin": "return count // 2",
                        "palindromic": "return count",
                    }[p],
                    "Trial division up to the square root is enough for each number.",
                )
            ],
            gen=lambda rng, p: (rng.randint(0, 200),),
            edge=lambda p: [(1,), (4,), (25,), (2,)],
            tags=("Mathematics",),
        ),
        Family(
            "fold_list",
            "MEDIUM",
            "list",
            "int",
            "fold_all",
            "nums",
            ("gcd", "lcm"),
            title=lambda p: f"{p.upper()} of a list",
            statement=lambda p: (
                f"Given a list of positive integers, print the {'greatest common divisor' if p == 'gcd' else 'least common multiple'} of all of them."
            ),
            idea=lambda p: f"{p} is associative, so fold math.{p} over the list.",
            correct=lambda p: (
                f"import math\nresult = nums[0]\nfor x in nums[1:]:\n    result = math.{p}(result, x)\nreturn result"
            ),
            wrong=lambda p: [
                (
                    ("return min(nums)", "The smallest element divides all the others.")
                    if p == "gcd"
                    else (
                        "result = 1\nfor x in nums:\n    result *= x\nreturn result",
                        "The product of all numbers is their least common multiple.",
                    )
                )
            ],
            gen=lambda rng, p: ([rng.choice([2, 3, 4, 6]) * rng.randint(1, 6) for _ in range(rng.randint(2, 6))],),
            edge=lambda p: [([4, 6],), ([6, 10, 15],)],
            tags=("Mathematics",),
        ),
        Family(
            "balanced",
            "MEDIUM",
            "str",
            "str",
            "is_balanced",
            "s",
            _BRACKETS,
            title=lambda p: f"Balanced {p}",
            statement=lambda p: (
                f"Given a string made of the bracket characters {p}, print YES if every bracket is "
                "closed by the matching bracket in the right order, otherwise NO."
            ),
            idea=lambda p: "Push opening brackets on a stack and pop on a closing bracket that matches the top.",
            correct=lambda p: (
                f"pairs = {{{', '.join(repr(p[i + 1]) + ': ' + repr(p[i]) for i in range(0, len(p), 2))}}}\n"
                "stack = []\nfor ch in s:\n    if ch in pairs:\n        if not stack or stack.pop() != pairs[ch]:\n            return 'NO'\n"
                "    else:\n        stack.append(ch)\nreturn 'YES' if not stack else 'NO'"
            ),
            wrong=lambda p: [
                (
                    f"opens = sum(1 for ch in s if ch in {p[0::2]!r})\nreturn 'YES' if 2 * opens == len(s) else 'NO'",
                    "Balanced means as many opening as closing brackets.",
                )
            ],
            gen=lambda rng, p: (_word(rng, p, 2, 12),),
            edge=lambda p: [(p[1] + p[0],), (p[0] + p[-2] + p[1] + p[-1],), (p[0] + p[1],)],
            tags=("Data structures",),
        ),
        Family(
            "pair_count",
            "MEDIUM_HARD",
            "list_k",
            "int",
            "count_pairs",
            "nums, k",
            ("sum equals k", "sum divisible by k", "difference equals k"),
            title=lambda p: f"Pairs whose {p}",
            statement=lambda p: (
                f"Given a list of integers and an integer k, print the number of index pairs i < j whose {p}"
                + (" (nums[j] - nums[i] or nums[i] - nums[j])" if p.startswith("difference") else "")
                + "."
            ),
            idea=lambda p: "n is small, so check every pair i < j directly.",
            correct=lambda p: (
                "count = 0\nfor i in range(len(nums)):\n    for j in range(i + 1, len(nums)):\n        if "
                + {
                    "sum equals k": "nums[i] + nums[j] == k",
                    "sum divisible by k": "(nums[i] + nums[j]) % k == 0",
                    "difference equals k": "abs(nums[i] - nums[j]) == k",
                }[p]
                + ":\n            count += 1\nreturn count"
            ),
            wrong=lambda p: [
                (
                    "count = 0\nfor i in range(len(nums)):\n    for j in range(len(nums)):\n        if i != j and "
                    + {
                        "sum equals k": "nums[i] + nums[j] == k",
                        "sum divisible by k": "(nums[i] + nums[j]) % k == 0",
                        "difference equals k": "abs(nums[i] - nums[j]) == k",
                    }[p]
                    + ":\n            count += 1\nreturn count",
                    "Check every ordered pair of different indices.",
                )
            ],
            gen=lambda rng, p: (_ints(rng, 1, 9, 2, 10), rng.randint(1, 10)),
            edge=lambda p: [([1, 2, 3, 4], 5), ([2, 4, 6], 2)],
            tags=("Complete search",),
        ),
        Family(
            "lis",
            "MEDIUM_HARD",
            "list",
            "int",
            "longest_subsequence",
            "nums",
            tuple(_SUBSEQUENCES),
            title=lambda p: f"Longest {p} subsequence",
            statement=lambda p: (
                f"Given a list of integers, print the length of its longest {_SUBSEQUENCES[p][0]} "
                "subsequence (elements need not be adjacent)."
            ),
            idea=lambda p: (
                "O(n^2) DP: best[i] is the longest subsequence ending at i, built from every earlier j that fits."
            ),
            correct=lambda p: (
                "best = [1] * len(nums)\nfor i in range(len(nums)):\n    for j in range(i):\n"
                f"        if nums[j] {_SUBSEQUENCES[p][1]} nums[i]:\n            best[i] = max(best[i], best[j] + 1)\nreturn max(best)"
            ),
            wrong=lambda p: [
                (
                    "best = cur = 1\nfor i in range(1, len(nums)):\n"
                    f"    cur = cur + 1 if nums[i - 1] {_SUBSEQUENCES[p][1]} nums[i] else 1\n    best = max(best, cur)\nreturn best",
                    "Track the longest stretch that keeps going in the right direction.",
                )
            ],
            gen=lambda rng, p: (_ints(rng, 0, 20, 3, 12),),
            edge=lambda p: [([3, 1, 4, 1, 5, 9, 2, 6],), ([9, 2, 6, 5, 3, 5, 1],)],
            tags=("Dynamic programming",),
        ),
        Family(
            "inversions",
            "MEDIUM_HARD",
            "list",
            "int",
            "count_inversions",
            "nums",
            (1, 2, 3),
            title=lambda m: "Inversions" if m == 1 else f"{m}-fold inversions",
            statement=lambda m: (
                "Given a list of integers, print the number of pairs i < j with nums[i] > "
                + (f"{m}*nums[j]." if m > 1 else "nums[j].")
            ),
            idea=lambda m: "Compare every pair; n is at most a few thousand here.",
            correct=lambda m: (
                "count = 0\nfor i in range(len(nums)):\n    for j in range(i + 1, len(nums)):\n"
                f"        if nums[i] > {m} * nums[j]:\n            count += 1\nreturn count"
            ),
            wrong=lambda m: [
                (
                    f"return sum(1 for i in range(len(nums) - 1) if nums[i] > {m} * nums[i + 1])",
                    "Only neighbouring pairs can be out of order.",
                )
            ],
            gen=lambda rng, m: (_ints(rng, 0, 30, 2, 12),),
            edge=lambda m: [([9, 5, 1],), ([7, 1, 5, 0],)],
            tags=("Sorting",),
        ),
        Family(
            "min_coins",
            "MEDIUM_HARD",
            "int",
            "int",
            "min_coins",
            "n",
            _COINS,
            title=lambda c: "Coins " + ", ".join(map(str, c)),
            statement=lambda c: (
                f"Coins have values {', '.join(map(str, c))} (unlimited supply). Given an amount n, print the "
                "smallest number of coins that sum to exactly n, or -1 if it is impossible."
            ),
            idea=lambda c: "Greedy fails for coin systems like this one, so do a DP over amounts 0..n.",
            correct=lambda c: (
                f"coins = {list(c)!r}\nINF = float('inf')\nbest = [0] + [INF] * n\nfor a in range(1, n + 1):\n"
                "    for c in coins:\n        if c <= a and best[a - c] + 1 < best[a]:\n            best[a] = best[a - c] + 1\n"
                "return best[n] if best[n] != INF else -1"
            ),
            wrong=lambda c: [
                (
                    f"count = 0\nfor c in {sorted(c, reverse=True)!r}:\n    count += n // c\n    n %= c\nreturn count if n == 0 else -1",
                    "Take as many of the largest coin as possible, then the next one.",
                )
            ],
            gen=lambda rng, c: (rng.randint(0, 60),),
            edge=lambda c: [(6,), (12,), (8,), (18,), (1,)],
            tags=("Dynamic programming", "Greedy algorithms"),
        ),
        Family(
            "edit_distance",
            "HARD",
            "two_str",
            "int",
            "edit_distance",
            "a, b",
            ("replace", "no-replace"),
            title=lambda p: "Edit distance" if p == "replace" else "Insert and delete distance",
            statement=lambda p: (
                "Given two lowercase strings a and b, print the minimum number of single-character "
                + ("insertions, deletions and replacements" if p == "replace" else "insertions and deletions")
                + " that turn a into b."
            ),
            idea=lambda p: "Classic DP table dist[i][j] over prefixes of a and b.",
            correct=lambda p: (
                "m, n = len(a), len(b)\ndist = [[0] * (n + 1) for _ in range(m + 1)]\nfor i in range(m + 1):\n"
                "    for j in range(n + 1):\n        if i == 0 or j == 0:\n            dist[i][j] = i + j\n        elif a[i - 1] == b[j - 1]:\n"
                "            dist[i][j] = dist[i - 1][j - 1]\n        else:\n"
                + (
                    "            dist[i][j] = 1 + min(dist[i - 1][j], dist[i][j - 1], dist[i - 1][j - 1])\n"
                    if p == "replace"
                    else "            dist[i][j] = 1 + min(dist[i - 1][j], dist[i][j - 1])\n"
                )
                + "return dist[m][n]"
            ),
            wrong=lambda p: [
                (
                    "diff = sum(1 for x, y in zip(a, b) if x != y)\nreturn diff + abs(len(a) - len(b))"
                    if p == "replace"
                    else "diff = sum(1 for x, y in zip(a, b) if x != y)\nreturn 2 * diff + abs(len(a) - len(b))",
                    "Compare position by position and pay for the length difference.",
                )
            ],
            gen=lambda rng, p: (_word(rng, "abc", 1, 8), _word(rng, "abc", 1, 8)),
            edge=lambda p: [("abc", "bc"), ("kitten", "sitting")],
            tags=("Dynamic programming",),
        ),
        Family(
            "best_subset",
            "HARD",
            "list_k",
            "int",
            "best_subset",
            "nums, k",
            ("at most", "exactly"),
            title=lambda p: "Largest sum at most k" if p == "at most" else "Subsets with sum k",
            statement=lambda p: (
                "Given positive integers and a limit k, print the largest sum of a subset (each element used "
                "at most once) that does not exceed k."
                if p == "at most"
                else "Given positive integers and a target k, print how many subsets (chosen by index) sum to exactly k."
            ),
            idea=lambda p: "0/1 knapsack over sums 0..k, iterating sums downwards so each element is used once.",
            correct=lambda p: (
                "reach = [True] + [False] * k\nfor x in nums:\n    for s in range(k, x - 1, -1):\n"
                "        if reach[s - x]:\n            reach[s] = True\nreturn max(s for s in range(k + 1) if reach[s])"
                if p == "at most"
                else "ways = [1] + [0] * k\nfor x in nums:\n    for s in range(k, x - 1, -1):\n        ways[s] += ways[s - x]\nreturn ways[k]"
            ),
            wrong=lambda p: [
                (
                    (
                        "total = 0\nfor x in sorted(nums, reverse=True):\n    if total + x <= k:\n        total += x\nreturn total",
                        "Greedily add the largest elements that still fit.",
                    )
                    if p == "at most"
                    else (
                        "ways = [1] + [0] * k\nfor x in nums:\n    for s in range(x, k + 1):\n        ways[s] += ways[s - x]\nreturn ways[k]",
                        "Count ways with a DP over sums, going upwards.",
                    )
                )
            ],
            gen=lambda rng, p: (_ints(rng, 1, 12, 2, 9), rng.randint(5, 30)),
            edge=lambda p: [([6, 5, 5], 10), ([3, 3, 4], 6)],
            tags=("Dynamic programming",),
        ),
        Family(
            "palindromes",
            "HARD",
            "str",
            "int",
            "longest_palindrome",
            "s",
            ("subsequence", "substring"),
            title=lambda p: f"Longest palindromic {p}",
            statement=lambda p: (
                f"Given a lowercase string, print the length of its longest palindromic {p}"
                + (" (characters need not be adjacent)." if p == "subsequence" else " (a contiguous piece).")
            ),
            idea=lambda p: (
                "Interval DP: lps[i][j] over substrings, matching ends add two."
                if p == "subsequence"
                else "Expand around every center, odd and even lengths."
            ),
            correct=lambda p: (
                "n = len(s)\nlps = [[0] * n for _ in range(n)]\nfor i in range(n - 1, -1, -1):\n    lps[i][i] = 1\n"
                "    for j in range(i + 1, n):\n        if s[i] == s[j]:\n            lps[i][j] = lps[i + 1][j - 1] + 2\n"
                "        else:\n            lps[i][j] = max(lps[i + 1][j], lps[i][j - 1])\nreturn lps[0][n - 1]"
                if p == "subsequence"
                else "best = 0\nfor center in range(2 * len(s) - 1):\n    lo, hi = center // 2, (center + 1) // 2\n"
                "    while lo >= 0 and hi < len(s) and s[lo] == s[hi]:\n        lo -= 1\n        hi += 1\n"
                "    best = max(best, hi - lo - 1)\nreturn best"
            ),
            wrong=lambda p: [
                (
                    (
                        "best = 1\nfor i in range(len(s)):\n    for j in range(i + 1, len(s) + 1):\n"
                        "        if s[i:j] == s[i:j][::-1]:\n            best = max(best, j - i)\nreturn best",
                        "Check every substring for being a palindrome.",
                    )
                    if p == "subsequence"
                    else (
                        "best = 0\nfor c in range(len(s)):\n    lo = hi = c\n    while lo >= 0 and hi < len(s) and s[lo] == s[hi]:\n"
                        "        lo -= 1\n        hi += 1\n    best = max(best, hi - lo - 1)\nreturn best",
                        "Expand around each character as the center.",
                    )
                )
            ],
            gen=lambda rng, p: (_word(rng, "abc", 1, 12),),
            edge=lambda p: [("abca",), ("abba",), ("aabcb",)],
            tags=("Dynamic programming", "String algorithms"),
        ),
        Family(
            "common_subsequence",
            "VERY_HARD",
            "two_str",
            "int",
            "common_length",
            "a, b",
            ("lcs", "scs", "del"),
            title=lambda p: {
                "lcs": "Longest common subsequence",
                "scs": "Shortest common supersequence",
                "del": "Delete to equal",
            }[p],
            statement=lambda p: (
                "Given two lowercase strings, print "
                + {
                    "lcs": "the length of their longest common subsequence.",
                    "scs": "the length of their shortest common supersequence (the shortest string that has both as subsequences).",
                    "del": "the fewest characters to delete, from either string, so that the two become equal.",
                }[p]
            ),
            idea=lambda p: (
                "DP over prefixes: lcs[i][j] grows by one when the last characters match"
                + {
                    "lcs": ".",
                    "scs": "; the supersequence length is len(a) + len(b) - lcs.",
                    "del": "; everything outside the lcs is deleted, len(a) + len(b) - 2 * lcs.",
                }[p]
            ),
            correct=lambda p: (
                "m, n = len(a), len(b)\nlcs = [[0] * (n + 1) for _ in range(m + 1)]\nfor i in range(1, m + 1):\n"
                "    for j in range(1, n + 1):\n        if a[i - 1] == b[j - 1]:\n            lcs[i][j] = lcs[i - 1][j - 1] + 1\n"
                "        else:\n            lcs[i][j] = max(lcs[i - 1][j], lcs[i][j - 1])\n"
                + {"lcs": "return lcs[m][n]", "scs": "return m + n - lcs[m][n]", "del": "return m + n - 2 * lcs[m][n]"}[
                    p
                ]
            ),
            wrong=lambda p: [
                (
                    "from collections import Counter\ncommon = sum((Counter(a) & Counter(b)).values())\n"
                    + {
                        "lcs": "return common",
                        "scs": "return len(a) + len(b) - common",
                        "del": "return len(a) + len(b) - 2 * common",
                    }[p],
                    "The common subsequence is made of the letters both strings share.",
                )
            ],
            gen=lambda rng, p: (_word(rng, "abcd", 1, 9), _word(rng, "abcd", 1, 9)),
            edge=lambda p: [("ab", "ba"), ("abcd", "dcba")],
            tags=("Dynamic programming",),
        ),
        Family(
            "partitions",
            "VERY_HARD",
            "int",
            "int",
            "count_partitions",
            "n",
            ("any", "distinct", "odd"),
            title=lambda p: {
                "any": "Integer partitions",
                "distinct": "Partitions into distinct parts",
                "odd": "Partitions into odd parts",
            }[p],
            statement=lambda p: (
                "Given n, print the number of ways to write n as a sum of "
                + {
                    "any": "positive integers",
                    "distinct": "distinct positive integers",
                    "odd": "odd positive integers",
                }[p]
                + ", where the order of the parts does not matter."
            ),
            idea=lambda p: (
                "Coin-change style counting over allowed parts, each part size processed once so order does not matter."
            ),
            correct=lambda p: (
                "ways = [1] + [0] * n\nfor part in range(1, n + 1"
                + (", 2" if p == "odd" else "")
                + "):\n"
                + (
                    "    for s in range(n, part - 1, -1):\n"
                    if p == "distinct"
                    else "    for s in range(part, n + 1):\n"
                )
                + "        ways[s] += ways[s - part]\nreturn ways[n]"
            ),
            wrong=lambda p: [
                (
                    "ways = [1] + [0] * n\nfor s in range(1, n + 1):\n    for part in range(1, s + 1"
                    + (", 2" if p == "odd" else "")
                    + "):\n        ways[s] += ways[s - part]\nreturn ways[n]",
                    "For each total, add the ways to reach it by appending one more part.",
                )
            ],
            gen=lambda rng, p: (rng.randint(1, 40),),
            edge=lambda p: [(4,), (6,)],
            tags=("Dynamic programming", "Mathematics"),
        ),
        Family(
            "prefix",
            "UNKNOWN_DIFFICULTY",
            "list",
            "list",
            "prefix_values",
            "nums",
            ("sum", "max", "min"),
            title=lambda p: f"Running {p}",
            statement=lambda p: (
                f"Given a list of integers, print the running {p}: the i-th output is the {p} of the first i elements."
            ),
            idea=lambda p: f"Keep the {p} so far and emit it after each element.",
            correct=lambda p: (
                "out = []\nfor x in nums:\n    out.append(x if not out else "
                + {"sum": "out[-1] + x", "max": "max(out[-1], x)", "min": "min(out[-1], x)"}[p]
                + ")\nreturn out"
            ),
            wrong=lambda p: [
                (
                    "out = []\nfor i in range(1, len(nums)):\n    out.append("
                    + {"sum": "sum(nums[:i])", "max": "max(nums[:i])", "min": "min(nums[:i])"}[p]
                    + ")\nreturn out",
                    "The i-th value covers nums[:i].",
                )
            ],
            gen=lambda rng, p: (_ints(rng, -9, 9, 1, 10),),
            edge=lambda p: [([3, -1, 4],)],
        ),
        Family(
            "rotate",
            "UNKNOWN_DIFFICULTY",
            "list_k",
            "list",
            "rotate",
            "nums, k",
            ("right", "left"),
            title=lambda p: f"Rotate {p}",
            statement=lambda p: (
                f"Given a list of integers and k >= 0, rotate the list {p} by k positions and print it. k may exceed the length."
            ),
            idea=lambda p: "Only k modulo the length matters; then it is one slice.",
            correct=lambda p: (
                "k %= len(nums)\n"
                + ("return nums[-k:] + nums[:-k] if k else nums[:]" if p == "right" else "return nums[k:] + nums[:k]")
            ),
            wrong=lambda p: [
                (
                    ("return nums[-k:] + nums[:-k]" if p == "right" else "return nums[k:] + nums[:k]"),
                    "A rotation is just two slices.",
                )
            ],
            gen=lambda rng, p: (_ints(rng, 0, 9, 1, 8), rng.randint(0, 20)),
            edge=lambda p: [([1, 2, 3], 5), ([4, 5], 2), ([1, 2, 3, 4], 6)],
        ),
    ]
