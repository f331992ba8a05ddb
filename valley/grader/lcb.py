"""LiveCodeBench's private-test encoding: JSON, or base64(zlib(pickle(json string))).

The real dataset stores most private tests pickled. Unpickling untrusted bytes can run code,
so the decoder refuses any pickle that names a global: the payload is only ever a str.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib


class PrivateTestsTooLarge(ValueError):
    """The private tests inflate past the size the caller allows (a decompression bomb)."""


class _StringsOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D102 - pickle hook
        raise pickle.UnpicklingError(f"private_test_cases: refusing pickled global {module}.{name}")


def decode_private_tests(encoded: str, max_bytes: int | None = None) -> list:
    """Decode `private_test_cases` as LiveCodeBench does: plain JSON first, else the packed form,
    inflated to at most `max_bytes` (PrivateTestsTooLarge past it). Anything else is a ValueError
    naming the field."""
    try:
        return json.loads(encoded)
    except json.JSONDecodeError:
        pass
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(encoded.encode()), max_bytes or 0)
        if inflater.unconsumed_tail:
            raise PrivateTestsTooLarge(f"private_test_cases: inflate past {max_bytes} bytes; send smaller problems")
        payload = _StringsOnly(io.BytesIO(raw)).load()
    except (zlib.error, pickle.UnpicklingError, EOFError, ValueError) as error:
        if isinstance(error, PrivateTestsTooLarge):
            raise
        raise ValueError(
            f"private_test_cases: not LiveCodeBench's encoding ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(payload, str):
        raise ValueError(f"private_test_cases: decoded to {type(payload).__name__}, expected a JSON string")
    return json.loads(payload)


def encode_private_tests(tests: list[dict]) -> str:
    """Encode tests the way the real dataset does (used to write the sample corpus)."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()
