"""Put a student in a local Hugging Face-format directory: built (tiny) or downloaded (real).

A complete directory carries `.valley-model.json` (preset, Hub id, resolved revision, files)
and is reused as is; anything else is (re)built beside it and renamed into place, so an
interrupted fetch never looks complete. The marker is a dot file so torchtune's checkpointer,
which copies a model's small files into every epoch directory, leaves it behind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from valley.errors import ValleyError
from valley.files import file_sha256
from valley.spec import ModelSpec

MARKER = ".valley-model.json"
#: what a real student needs: weights, configs, tokenizer (not Llama's 16 GB `original/` consolidated copy)
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.jinja", "tokenizer*"]


def fetch_model(spec: ModelSpec, out_dir: Path) -> dict:
    """Make out_dir a complete model directory for `spec`; return its marker record."""
    out_dir = out_dir.resolve()
    marker = out_dir / MARKER
    if marker.exists():
        record = json.loads(marker.read_text())
        if record.get("preset") != spec.preset:
            raise ValleyError(
                f"--out: {out_dir} already holds preset {record.get('preset')!r}, not {spec.preset!r}; pick another "
                "directory"
            )
        return record
    if out_dir.exists():
        raise ValleyError(
            f"--out: {out_dir} exists but is not a complete valley model directory; remove it or pick another"
        )
    partial = out_dir.with_name(out_dir.name + ".partial")
    if spec.tiny:
        from valley.train.tiny import build_tiny

        shutil.rmtree(partial, ignore_errors=True)
        build_tiny(spec.family, partial)
        revision = f"tiny-{file_sha256(partial / 'model.safetensors')[:12]}"
    else:
        revision = download(spec, partial)
    record = {
        "preset": spec.preset,
        "hf_id": spec.hf_id,
        "family": spec.family,
        "tiny": spec.tiny,
        "revision": revision,
        "files": {p.name: p.stat().st_size for p in sorted(partial.iterdir()) if p.is_file()},
    }
    (partial / MARKER).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    partial.rename(out_dir)
    return record


def download(spec: ModelSpec, into: Path) -> str:
    """snapshot_download at the spec's revision (resumable into the same dir); returns the commit sha."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        sha = HfApi().model_info(spec.hf_id, revision=spec.revision).sha
        snapshot_download(spec.hf_id, revision=sha, local_dir=into, allow_patterns=HUB_PATTERNS)
    except GatedRepoError:
        raise ValleyError(
            f"model: {spec.hf_id} is gated; accept its license on huggingface.co and set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise ValleyError(f"model: {spec.hf_id} not found on the Hub (or HF_TOKEN lacks access)") from None
    except Exception as error:  # network and HTTP errors differ between hub releases (httpx, requests)
        raise ValleyError(
            f"model: could not download {spec.hf_id}: {error}; check network access to the Hub and rerun (it resumes)"
        ) from None
    shutil.rmtree(into / ".cache", ignore_errors=True)
    return sha
