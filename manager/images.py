"""Container images: content-hash tags, builds through the Docker SDK, recorded digests.

Each image is a Dockerfile (and, for a multi-target file, a target) built with the repository root
as context. Two variants: `gpu` (trainer and evaluator on CUDA bases) and `cpu` (trainer-cpu and
evaluator-cpu, two targets of images/cpu/Dockerfile on a Python or Debian base); grader and control
serve both. Every Dockerfile takes its base as the build argument BASE_IMAGE, defaulting to a
digest-pinned public image, so a mirror or a locally built base can be named at build time.

An image's tag is a hash of its Dockerfile, its target, its base and every context file its
COPY/ADD instructions name (after `.dockerignore`), so the same sources on the same base always give
the same tag and any change gives a new one. `build_images` records what it built in
`images/digests.json` (written atomically): repository, tag, image id, the base (as named and its
image id) and, after a push, the registry's manifest digest. `image_refs` (what `valleyctl render`
puts in the manifests) gives the recorded `repo:tag[@sha256:…]` of every image whose sources have not
changed since, and `repo:<content tag>` otherwise.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import hashlib
import http.server
import json
import os
import shlex
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from valley.errors import ValleyError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ROLES = ("trainer", "evaluator", "grader", "control")
DIGESTS_FILE = Path("images") / "digests.json"
TAG_LENGTH = 16
#: the build argument every Dockerfile takes its base from (`ARG BASE_IMAGE=<default>` before FROM)
BASE_ARG = "BASE_IMAGE"
#: how long the engine may stay silent in a build (installing torch prints nothing for a while)
BUILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Image:
    """One image valley builds: `valley-<name>`, playing `role` in the pods."""

    name: str
    role: str
    dockerfile: str
    #: the stage of a multi-target Dockerfile; None builds the last one
    target: str | None = None


IMAGES = {
    image.name: image
    for image in (
        Image("trainer", "trainer", "images/trainer/Dockerfile"),
        Image("evaluator", "evaluator", "images/evaluator/Dockerfile"),
        Image("grader", "grader", "images/grader/Dockerfile"),
        Image("control", "control", "images/control/Dockerfile"),
        Image("trainer-cpu", "trainer", "images/cpu/Dockerfile", target="trainer"),
        Image("evaluator-cpu", "evaluator", "images/cpu/Dockerfile", target="evaluator"),
    )
}
#: the image of each role a cluster of that kind runs (the cluster profile's `variant`)
VARIANTS = {
    "gpu": ("trainer", "evaluator", "grader", "control"),
    "cpu": ("trainer-cpu", "evaluator-cpu", "grader", "control"),
}


def image(name: str, root: Path = PROJECT_ROOT) -> Image:
    """The image called `name`, its Dockerfile present under `root`."""
    if name not in IMAGES:
        raise ValleyError(f"image {name!r}: unknown; known images: {', '.join(IMAGES)}")
    found = IMAGES[name]
    if not (root / found.dockerfile).is_file():
        raise ValleyError(f"image {name!r}: no {found.dockerfile} under {root}")
    return found


def variant_images(variant: str) -> tuple[str, ...]:
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ValleyError(f"--variant: {variant!r}; allowed: {', '.join(VARIANTS)}") from None


def repository(name: str, registry: str | None = None) -> str:
    """`valley-<name>`, under `registry` when given (`ghcr.io/org` → `ghcr.io/org/valley-trainer`)."""
    return f"{registry.rstrip('/')}/valley-{name}" if registry else f"valley-{name}"


def logical_lines(dockerfile_text: str) -> list[str]:
    return dockerfile_text.replace("\\\n", " ").splitlines()


def default_base(dockerfile_text: str) -> str:
    """The default of `ARG BASE_IMAGE=…`, which every valley Dockerfile declares before its first FROM."""
    for line in logical_lines(dockerfile_text):
        words = line.strip().split(None, 1)
        if words and words[0].upper() == "FROM":
            break
        if len(words) == 2 and words[0].upper() == "ARG" and words[1].startswith(f"{BASE_ARG}="):
            return words[1].split("=", 1)[1].strip()
    raise ValleyError(f"Dockerfile: no `ARG {BASE_ARG}=<image>` before its first FROM")


def copied_sources(dockerfile_text: str) -> list[str]:
    """The context paths (or globs) a Dockerfile's COPY/ADD instructions read.

    Copies from another stage or image (`--from=`) read nothing from the context.
    """
    sources: list[str] = []
    for line in logical_lines(dockerfile_text):
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
    dockerfile = image(name, root).dockerfile
    files = context_files(root, dockerfile)
    selected: set[str] = set()
    for source in copied_sources((root / dockerfile).read_text()):
        source = source.rstrip("/")
        if source == ".":
            selected |= files
            continue
        selected |= {f for f in files if f == source or f.startswith(source + "/") or fnmatch.fnmatch(f, source)}
    return sorted(selected)


def base_of(name: str, bases: dict[str, str] | None = None, root: Path = PROJECT_ROOT) -> str:
    """The base image `name` builds from: `bases` by image name, then by role, then `*` (all),
    else its Dockerfile's default."""
    found = image(name, root)
    bases = bases or {}
    for key in (found.name, found.role, "*"):
        if key in bases:
            return bases[key]
    return default_base((root / found.dockerfile).read_text())


def content_tag(name: str, root: Path = PROJECT_ROOT, base: str | None = None) -> str:
    """Hash of the Dockerfile, target, base and every context file it copies: the image's tag."""
    found = image(name, root)
    digest = hashlib.sha256((root / found.dockerfile).read_bytes())
    digest.update(f"\0target={found.target or ''}\0base={base or base_of(name, root=root)}".encode())
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


def recorded_ref(entry: dict) -> str:
    """`repo:tag`, with `@sha256:…` once pushed."""
    return f"{entry['repository']}:{entry['tag']}" + (f"@{entry['digest']}" if entry.get("digest") else "")


def is_current(name: str, entry: dict, root: Path = PROJECT_ROOT) -> bool:
    """Whether a recorded build still matches the sources (hashed with the base it was built from)."""
    return entry.get("tag") == content_tag(name, root, entry.get("base"))


def image_refs(registry: str | None = None, root: Path = PROJECT_ROOT, variant: str = "gpu") -> dict[str, str]:
    """The image reference of each role (trainer, evaluator, grader, control) on a `variant` cluster.

    The recorded `repo:tag` (with `@sha256:…` once pushed) of an image built from the current
    sources, under `registry` when one is given; else `repo:tag` with the tag the sources hash to.
    """
    recorded = read_digests(root)
    refs = {}
    for name in variant_images(variant):
        role, entry = IMAGES[name].role, recorded.get(name, {})
        usable = entry and is_current(name, entry, root)
        if usable and (registry is None or entry["repository"] == repository(name, registry)):
            refs[role] = recorded_ref(entry)
        else:
            refs[role] = f"{repository(name, registry)}:{content_tag(name, root)}"
    return refs


def profile_refs(profile, root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Each role's image on a cluster with this profile (manager.profile.ClusterProfile): the recorded
    builds of its variant (pinned by digest under its registry), the profile's own `images` over them."""
    return {**image_refs(registry=profile.registry, root=root, variant=profile.variant), **profile.images}


def require_pullable(refs: dict[str, str], pull_policy: str = "IfNotPresent") -> None:
    """A cluster pulls `registry/repo:tag@sha256:…`: refuse refs without a registry host or a
    pushed digest (a node cannot pull what was only built on this machine). Only the roles a
    run's pods use; the kit's `control` image is set in its overlay. With pull policy `Never` the
    images were loaded into the nodes (kind load, k3d image import) and nothing is pulled."""
    if pull_policy == "Never":
        return
    for role, ref in sorted((role, refs[role]) for role in ("trainer", "evaluator", "grader")):
        first = ref.split("/", 1)[0]
        qualified = "/" in ref and ("." in first or ":" in first or first == "localhost")
        if not qualified or "@sha256:" not in ref:
            why = "has no registry" if not qualified else "is not pushed (no digest)"
            raise ValleyError(
                f"images: {role} image {ref} {why}; run `valleyctl images build --registry R --push` "
                f"and set `registry: R` in the cluster profile (--profile, $VALLEY_PROFILE), or load the images "
                f"into the nodes and set `image_pull_policy: Never` there"
            )


def image_status(root: Path = PROJECT_ROOT) -> list[dict]:
    """One row per image: recorded ref and whether it still matches the sources."""
    recorded = read_digests(root)
    rows = []
    for name, found in IMAGES.items():
        if not (root / found.dockerfile).is_file():
            continue
        entry = recorded.get(name)
        tag = content_tag(name, root, entry.get("base") if entry else None)
        if not entry:
            state, ref = "not built", None
        else:
            ref = recorded_ref(entry)
            if entry["tag"] != tag:
                state = "stale (sources changed since the build)"
            else:
                state = "pushed, pinned by digest" if entry.get("digest") else "built locally, not pushed"
        base = entry.get("base") if entry else None
        rows.append({"name": name, "tag": tag, "base": base, "recorded": ref, "state": state})
    return rows


def docker_client():
    """A client for the engine at DOCKER_HOST (or the default socket); one clear line if unreachable."""
    import docker

    try:
        client = docker.from_env(timeout=BUILD_TIMEOUT_S)
        client.ping()
    except docker.errors.DockerException as error:
        where = os.environ.get("DOCKER_HOST", "the default socket")
        raise ValleyError(
            f"cannot reach a Docker engine at {where}: start dockerd or set DOCKER_HOST ({error})"
        ) from error
    return client


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def check_wheelhouse(directory: Path) -> None:
    if not directory.is_dir() or not any(directory.glob("*.whl")):
        raise ValleyError(f"--wheelhouse: {directory} holds no wheels (make one with `pip wheel --no-deps -r LOCK`)")


@contextlib.contextmanager
def served_wheelhouse(directory: Path) -> Iterator[dict[str, str]]:
    """Serve a directory of wheels on a loopback port for the length of a build; yields the pip
    build arguments that make pip install from it alone (the build runs on the host network)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"PIP_FIND_LINKS": f"http://127.0.0.1:{server.server_address[1]}/", "PIP_NO_INDEX": "1"}
    finally:
        server.shutdown()
        server.server_close()


def base_image_id(client, base: str) -> str | None:
    """The engine's id of a build's base image; None for `scratch`, Docker's empty base, which is
    no image (asking for it is a 404)."""
    return None if base == "scratch" else client.images.get(base).id


def parse_bases(values: list[str] | None) -> dict[str, str]:
    """`--base REF` (every image) and `--base ROLE=REF` / `--base NAME=REF` (trainer=…, trainer-cpu=…)."""
    bases: dict[str, str] = {}
    for value in values or ():
        key, sep, ref = value.partition("=")
        if not sep:
            key, ref = "*", value
        if key != "*" and key not in ROLES and key not in IMAGES:
            raise ValleyError(f"--base {value}: {key!r} is neither a role ({', '.join(ROLES)}) nor an image name")
        if not ref:
            raise ValleyError(f"--base {value}: no image after '='")
        bases[key] = ref
    return bases


def build_images(
    names: list[str] | None = None,
    registry: str | None = None,
    push: bool = False,
    *,
    variant: str = "gpu",
    bases: dict[str, str] | None = None,
    build_args: dict[str, str] | None = None,
    wheelhouse: Path | None = None,
    root: Path = PROJECT_ROOT,
    client=None,
) -> dict[str, dict]:
    """Build (and optionally push) images, recording each in digests.json as soon as it is done.

    `names` default to the variant's images. `bases` (see `base_of`) become each build's BASE_IMAGE;
    `build_args` are passed as given (PIP_INDEX_URL, …); `wheelhouse` is served on loopback and
    the builds run on the host network to reach it. Returns {name: entry}, each entry as recorded:
    repository, tag, image_id, base, base_id, digest (the registry's manifest digest after a push;
    a local rebuild of an unchanged image keeps the one recorded).
    """
    import docker

    names = list(names or variant_images(variant))
    for name in names:
        image(name, root)
    if push and not registry:
        raise ValleyError("--push needs --registry (e.g. --registry ghcr.io/your-org)")
    if wheelhouse:
        check_wheelhouse(wheelhouse)
    client = client or docker_client()
    built = {}
    with served_wheelhouse(wheelhouse) if wheelhouse else contextlib.nullcontext({}) as wheel_args:
        for name in names:
            found, base = IMAGES[name], base_of(name, bases, root)
            repo, tag = repository(name, registry), content_tag(name, root, base)
            try:
                base_id = base_image_id(client, base)
            except docker.errors.ImageNotFound:
                base_id = None  # pulled by the build
            try:
                built_image, _logs = client.images.build(
                    path=str(root),
                    dockerfile=found.dockerfile,
                    target=found.target,
                    tag=f"{repo}:{tag}",
                    buildargs={**(build_args or {}), **wheel_args, BASE_ARG: base},
                    network_mode="host" if wheelhouse else None,
                    rm=True,
                    forcerm=True,
                    pull=False,
                )
            except docker.errors.BuildError as error:
                raise ValleyError(f"image {name}: build failed: {error.msg}") from error
            except docker.errors.APIError as error:
                raise ValleyError(f"image {name}: build failed: {error.explanation or error}") from error
            previous = read_digests(root).get(name, {})
            keep = previous.get("repository") == repo and previous.get("tag") == tag
            entry = {
                "repository": repo,
                "tag": tag,
                "image_id": built_image.id,
                "base": base,
                "base_id": base_id or base_image_id(client, base),
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
