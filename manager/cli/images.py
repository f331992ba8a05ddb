"""`valleyctl images`: build the workload images through the Docker SDK and list what is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from manager.cli.options import JsonOpt
from manager.cli.output import Output
from valley.cli_kit import typer_app

images_app = typer_app(
    "Build, push and list valley's container images (trainer, evaluator, grader, control).\n\n"
    "Example: valleyctl images build --push --registry ghcr.io/your-org"
)

NamesArg = Annotated[
    Optional[list[str]], typer.Argument(help="Images to build (default: all of them).", show_default=False)
]
RegistryOpt = Annotated[Optional[str], typer.Option("--registry", help="Registry prefix, e.g. ghcr.io/your-org.")]
PushOpt = Annotated[bool, typer.Option("--push", help="Push after building and record the registry digest.")]
RootOpt = Annotated[Path, typer.Option("--root", hidden=True, help="Project directory holding images/.")]


def _default_root() -> Path:
    from manager.images import PROJECT_ROOT

    return PROJECT_ROOT


@images_app.command("build")
def images_build(
    names: NamesArg = None,
    push: PushOpt = False,
    registry: RegistryOpt = None,
    root: RootOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build images with content-hash tags and record them in images/digests.json.

    \b
    Examples:
      valleyctl images build grader
      valleyctl images build --push --registry ghcr.io/your-org
    """
    from manager.images import build_images

    built = build_images(names, registry, push, root=root or _default_root())
    out = Output(as_json)

    def human() -> None:
        for name, entry in built.items():
            pinned = f"@{entry['digest']}" if entry["digest"] else "  (not pushed: render uses the tag)"
            out.line(f"{name:10} {entry['repository']}:{entry['tag']}{pinned}")
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
                f"{row['name']:10} {row['tag']}  {row['state']}" + (f"  {row['recorded']}" if row["recorded"] else "")
            )

    out.result(rows, human)
