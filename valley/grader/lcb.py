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


class _StringsOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D102 - pickle hook
        raise pickle.UnpicklingError(f"private_test_cases: refusing pickled global {module}.{name}")


def decode_private_tests(encoded: str) -> list[dict]:
    """Decode `private_test_cases` as LiveCodeBench does: plain JSON first, else the packed form."""
    try:
        return json.loads(encoded)
    except json.JSONDecodeError:
        pass
    raw = zlib.decompress(base64.b64decode(encoded.encode()))
    payload = _StringsOnly(io.BytesIO(raw)).load()
    if not isinstance(payload, str):
        raise ValueError(f"private_test_cases: decoded to {type(payload).__name__}, expected a JSON string")
    return json.loads(payload)


def encode_private_tests(tests: list[dict]) -> str:
    """Encode tests the way the real dataset does (used to write the sample corpus)."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()
