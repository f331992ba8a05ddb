"""valleyctl responsiveness: `valleyctl --help` against a bare interpreter start, and
rendering the whole valley grid (in process and through the CLI). Goals: --help under
0.5 s, the grid under 1 s. Figures are medians of several runs, with ratios against a
baseline measured in the same run."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def median_seconds(command: list[str], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    from manager.render import RenderContext, render_run, to_yaml
    from manager.study import valley_study

    baseline = median_seconds([sys.executable, "-c", "pass"])
    help_time = median_seconds([sys.executable, "-m", "manager", "--help"])
    cli_render = median_seconds([sys.executable, "-m", "manager", "render", "--study", "valley"], repeat=3)

    runs = valley_study()
    start = time.perf_counter()
    for _ in range(10):
        text = to_yaml([obj for run in runs for obj in render_run(run, RenderContext(run_id="x"))])
    in_process = (time.perf_counter() - start) / 10

    print(f"python -c pass                      {baseline:7.3f} s  (baseline)")
    print(
        f"valleyctl --help                    {help_time:7.3f} s  {help_time / baseline:5.1f}x baseline  goal < 0.5 s: "
        f"{'met' if help_time < 0.5 else 'MISSED'}"
    )
    print(
        f"valleyctl render --study valley     {cli_render:7.3f} s  {cli_render / baseline:5.1f}x baseline  goal < 1 s: "
        f"{'met' if cli_render < 1 else 'MISSED'}"
    )
    print(f"render 16 runs in process           {in_process:7.3f} s  ({len(text.split(chr(10)))} YAML lines)")


if __name__ == "__main__":
    main()
