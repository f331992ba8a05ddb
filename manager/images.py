"""Container images: content-hash tags, builds through the Docker SDK, recorded digests.

Each image is `images/<name>/Dockerfile`, built with the repository root as context. Its tag is a
hash of the Dockerfile and of every context file its COPY/ADD instructions name (after
`.dockerignore`), so the same sources always give the same tag and any change gives a new one.
`build_images` records what it built in `images/digests.json` (written atomically); with `push` it
records the registry's manifest digest too, and `image_refs` (what `valleyctl render` puts in the
manifests) then pins `repo:tag@sha256:…`. Without a recorded digest it falls back to `repo:tag`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shlex
import tempfile
from pathlib import Path

from valley.errors import ValleyError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
IMAGE_NAMES = ("trainer", "evaluator", "grader", "control")
DIGESTS_FILE = Path("images") / "digests.json"
TAG_LENGTH = 16


def dockerfile_path(name: str, root: Path = PROJECT_ROOT) -> Path:
    path = root / "images" / name / "Dockerfile"
    if not path.is_file():
        known = ", ".join(available_images(root)) or "none"
        raise ValleyError(f"image {name!r}: no {path.relative_to(root)} (known images: {known})")
    return path


def available_images(root: Path = PROJECT_ROOT) -> list[str]:
    return sorted(p.parent.name for p in (root / "images").glob("*/Dockerfile"))


def repository(name: str, registry: str | None = None) -> str:
    """`valley-<name>`, under `registry` when given (`ghcr.io/org` → `ghcr.io/org/valley-trainer`)."""
    return f"{registry.rstrip('/')}/valley-{name}" if registry else f"valley-{name}"


def copied_sources(dockerfile_text: str) -> list[str]:
    """The context paths (or globs) a Dockerfile's COPY/ADD instructions read.

    Copies from another stage or image (`--from=`) read nothing from the context.
    """
    logical = dockerfile_text.replace("\\\n", " ").splitlines()
    sources: list[str] = []
    for line in logical:
        words = line.strip().split(None, 1)
        if len(words) < 2 or words[0].upper() not in ("COPY", "ADD"):
            continue
        rest = words[1].strip()
        args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        flags = [a for a in args if a.startswith("--")]
        if any(flag.startswith("--from") for flag in flags):
            continue
        paths = [a for a in args if not a.startswith("--")]
        sources.extend(os.path.normpath(p).lstrip("/") or "." for p in paths[:-1])
    return sources


def context_files(root: Path, dockerfile: str) -> set[str]:
    """Files Docker would send as build context, with `.dockerignore` applied the way the SDK does."""
    from docker.utils.build import exclude_paths

    ignore = root / ".dockerignore"
    patterns = (
        [p for p in ignore.read_text().splitlines() if p.strip() and not p.startswith("#")] if ignore.exists() else []
    )
    return {p for p in exclude_paths(str(root), patterns, dockerfile=dockerfile) if (root / p).is_file()}


def copied_files(name: str, root: Path = PROJECT_ROOT) -> list[str]:
    """The context files (relative paths) that image `name`'s COPY/ADD instructions put in it."""
    dockerfile = dockerfile_path(name, root)
    files = context_files(root, dockerfile.relative_to(root).as_posix())
    selected: set[str] = set()
    for source in copied_sources(dockerfile.read_text()):
        source = source.rstrip("/")
        if source == ".":
            selected |= files
            continue
        selected |= {f for f in files if f == source or f.startswith(source + "/") or fnmatch.fnmatch(f, source)}
    return sorted(selected)


def content_tag(name: str, root: Path = PROJECT_ROOT) -> str:
    """Hash of the Dockerfile plus every context file it copies: the image's tag."""
    digest = hashlib.sha256(dockerfile_path(name, root).read_bytes())
    for path in copied_files(name, root):
        digest.update(b"\0" + path.encode() + b"\0" + hashlib.sha256((root / path).read_bytes()).digest())
    return digest.hexdigest()[:TAG_LENGTH]


def read_digests(root: Path = PROJECT_ROOT) -> dict[str, dict]:
    path = root / DIGESTS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def record_digest(name: str, entry: dict, root: Path = PROJECT_ROOT) -> None:
    """Record one image in digests.json: temp file then rename, so a crash never leaves half a file."""
    path = root / DIGESTS_FILE
    recorded = read_digests(root)
    recorded[name] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".digests-", suffix=".json")
    with os.fdopen(fd, "w") as out:
        json.dump(recorded, out, indent=2, sort_keys=True)
        out.write("\n")
    os.replace(tmp, path)


def image_refs(registry: str | None = None, root: Path = PROJECT_ROOT) -> dict[str, str]:
    """The image reference of each of trainer, evaluator, grader and control.

    `repo:tag@sha256:…` when a pushed digest is recorded for that repository, else `repo:tag` with
    the tag the current sources hash to.
    """
    recorded = read_digests(root)
    refs = {}
    for name in IMAGE_NAMES:
        entry = recorded.get(name, {})
        if entry.get("digest") and (registry is None or entry["repository"] == repository(name, registry)):
            refs[name] = f"{entry['repository']}:{entry['tag']}@{entry['digest']}"
        else:
            refs[name] = f"{repository(name, registry)}:{content_tag(name, root)}"
    return refs


def require_pullable(refs: dict[str, str]) -> None:
    """A cluster pulls `registry/repo:tag@sha256:…`: refuse refs without a registry host or a
    pushed digest (a node cannot pull what was only built on this machine). Only the roles a
    run's pods use; the kit's `control` image is set in its overlay."""
    for role, ref in sorted((role, refs[role]) for role in ("trainer", "evaluator", "grader")):
        first = ref.split("/", 1)[0]
        qualified = "/" in ref and ("." in first or ":" in first or first == "localhost")
        if not qualified or "@sha256:" not in ref:
            why = "has no registry" if not qualified else "is not pushed (no digest)"
            raise ValleyError(
                f"images: {role} image {ref} {why}; run `valleyctl images build --registry R --push` "
                f"and set `registry: R` in the cluster profile (--profile, $VALLEY_PROFILE)"
            )


def image_status(root: Path = PROJECT_ROOT) -> list[dict]:
    """One row per image: recorded ref and whether it still matches the sources."""
    recorded = read_digests(root)
    rows = []
    for name in available_images(root):
        entry = recorded.get(name)
        tag = content_tag(name, root)
        if not entry:
            state, ref = "not built", None
        else:
            ref = f"{entry['repository']}:{entry['tag']}" + (f"@{entry['digest']}" if entry.get("digest") else "")
            if entry["tag"] != tag:
                state = "stale (sources changed since the build)"
            else:
                state = "pushed, pinned by digest" if entry.get("digest") else "built locally, not pushed"
        rows.append({"name": name, "tag": tag, "recorded": ref, "state": state})
    return rows


def docker_client():
    """A client for the engine at DOCKER_HOST (or the default socket); one clear line if unreachable."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        where = os.environ.get("DOCKER_HOST", "the default socket")
        raise ValleyError(
            f"cannot reach a Docker engine at {where}: start dockerd or set DOCKER_HOST ({error})"
        ) from error
    return client


def build_images(
    names: list[str] | None = None,
    registry: str | None = None,
    push: bool = False,
    *,
    root: Path = PROJECT_ROOT,
    client=None,
) -> dict[str, dict]:
    """Build (and optionally push) images, recording each in digests.json as soon as it is done.

    Returns {name: {"repository", "tag", "image_id", "digest"}}. `digest` is the registry's
    manifest digest after a push; a local rebuild of an unchanged image keeps the one recorded.
    """
    import docker

    names = list(names or IMAGE_NAMES)
    for name in names:
        dockerfile_path(name, root)
    if push and not registry:
        raise ValleyError("--push needs --registry (e.g. --registry ghcr.io/your-org)")
    client = client or docker_client()
    built = {}
    for name in names:
        repo, tag = repository(name, registry), content_tag(name, root)
        try:
            image, _logs = client.images.build(
                path=str(root),
                dockerfile=f"images/{name}/Dockerfile",
                tag=f"{repo}:{tag}",
                rm=True,
                forcerm=True,
                pull=False,
            )
        except docker.errors.BuildError as error:
            raise ValleyError(f"image {name}: build failed: {error.msg}") from error
        previous = read_digests(root).get(name, {})
        keep = previous.get("repository") == repo and previous.get("tag") == tag
        entry = {
            "repository": repo,
            "tag": tag,
            "image_id": image.id,
            "digest": previous.get("digest") if keep else None,
        }
        if push:
            entry["digest"] = push_image(client, repo, tag)
        record_digest(name, entry, root)
        built[name] = entry
    return built


def push_image(client, repo: str, tag: str) -> str:
    """Push `repo:tag`; return the manifest digest the registry reports."""
    digest = None
    for event in client.api.push(repo, tag=tag, stream=True, decode=True):
        if "error" in event:
            raise ValleyError(f"push {repo}:{tag} failed: {event['error']}")
        digest = event.get("aux", {}).get("Digest", digest)
    if not digest:
        raise ValleyError(f"push {repo}:{tag}: the registry reported no digest")
    return digest
