"""A functional program's return value on the grader's side: the tagged JSON the harness passed
through untouched (harness.encode_value wrote it in the program's own process, so it is the
program's output and may be anything) decoded into the Python values LiveCodeBench's `==`
compares with the expected value, within a budget.

The expected value is JSON: no sets, only string keys, finite numbers of at most 4,300 digits.
So a set, a dict with a key that is not a string, or a tagged number longer than any JSON
number can equal no expected value: each decodes to an Opaque (equal to nothing) without its
items ever being hashed or parsed (hash-colliding items made a hash table quadratic in the
grader, outside every limit). And a value equal to the expected one is never much larger in
structure: each expected node is encoded in at most STRUCTURE_FACTOR structural characters
(brackets, braces, commas, colons; a Fraction equal to a float takes 4), so a text with more,
counted at C speed before anything is parsed, is a wrong answer. What is parsed therefore costs
memory in proportion to the expected output (plus the text itself), never to what the program
chose to send; anything that does not decode is the program's runtime error.
"""

from __future__ import annotations

import decimal
import fractions
import json

from valley.grader.harness import MAX_DEPTH

STRUCTURE_FACTOR = 6
STRUCTURE_SLACK = 32
MAX_NUMBER_CHARS = 5_000  # past any JSON number's digits (4,300) in decimal, and past its bits in hex


class Opaque:
    """A value that can equal no expected value (a type that cannot cross the boundary, a set, a
    dict with a non-string key, a number larger than JSON holds): equal to nothing."""

    def __init__(self, type_name: str):
        self.type_name = str(type_name)

    def __eq__(self, other):
        return False

    __hash__ = object.__hash__

    def __repr__(self):
        return f"<{self.type_name}>"


def structure(text: str) -> int:
    """The structural characters of a JSON text: an upper bound on its values, at C speed."""
    return text.count("[") + text.count("{") + text.count(",") + text.count(":")


def decode_reply(text: str, expected: str) -> tuple[str, object, str]:
    """("exited", the decoded value, "") for what a functional program's child left in its value
    channel, or (a verdict status, None, why) when that is the program's verdict already."""
    if not text:
        return "exited", Opaque("nothing"), ""
    budget = STRUCTURE_FACTOR * structure(expected) + STRUCTURE_SLACK
    if (found := structure(text)) > budget:
        return "wrong_answer", None, f"the return value is larger than any equal to the expected one ({found}>{budget})"
    try:
        return "exited", decode_value(json.loads(text)), ""
    except (ValueError, TypeError, RecursionError, MemoryError, ArithmeticError, AttributeError) as error:
        return "runtime_error", None, f"the program corrupted its return value channel ({type(error).__name__})"


def decode_value(data, depth: int = 0):
    """Back to Python values (see the module's docstring for what becomes an Opaque). Raises
    ValueError (or TypeError, RecursionError) on anything `encode_value` cannot have made."""
    if depth > MAX_DEPTH + 1:
        raise ValueError("value nested too deeply")
    if isinstance(data, list):
        return [decode_value(v, depth + 1) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) != 1:
        raise ValueError("a tagged value has exactly one key")
    ((tag, payload),) = data.items()
    if tag in ("int", "decimal"):
        text = _string(payload)
        if len(text) > MAX_NUMBER_CHARS:
            return Opaque(f"{tag} larger than any JSON number")
        if tag == "decimal":
            return decimal.Decimal(text)
        return int(text, 16) if text.lstrip("-").startswith("0x") else int(text)
    if tag == "float":
        if payload not in ("inf", "-inf", "nan"):  # float.__repr__ of the values plain JSON cannot hold
            raise ValueError("a tagged float is inf, -inf or nan")
        return float(payload)
    if tag == "fraction":
        numerator, denominator = (_string(part) for part in _pair(payload))
        if max(len(numerator), len(denominator)) > MAX_NUMBER_CHARS:
            return Opaque("fraction larger than any JSON number")
        return fractions.Fraction(int(numerator, 16), int(denominator, 16))
    if tag == "tuple":
        return tuple(decode_value(v, depth + 1) for v in _list(payload))
    if tag == "set":
        _list(payload)
        return Opaque("set")
    if tag == "dict":
        pairs = [_pair(item) for item in _list(payload)]
        keys = [decode_value(key, depth + 1) for key, _value in pairs]
        if not all(type(key) is str for key in keys):
            return Opaque("dict with a key that is not a string")
        return {key: decode_value(value, depth + 1) for key, (_key, value) in zip(keys, pairs, strict=True)}
    if tag == "opaque":
        return Opaque(_string(payload)[:100])
    raise ValueError(f"unknown tag {str(tag)[:50]!r}")


def _string(payload) -> str:
    if not isinstance(payload, str):
        raise ValueError("a tagged number is a string")
    return payload


def _list(payload) -> list:
    if not isinstance(payload, list):
        raise ValueError("a tagged container holds a list")
    return payload


def _pair(item) -> list:
    if not (isinstance(item, list) and len(item) == 2):
        raise ValueError("a pair is a two-item list")
    return item
