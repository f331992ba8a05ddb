"""Which runs a command acts on, from flags.

    --study valley                            every run of the study
    --size 10k --model llama                  the study's llama 10k run
    --size 6k --model qwen --subset correct --from qwen-30k
    --run qwen-10k --run llama-baseline       by label (or full run name)
    --size 20k --model qwen --off-grid        a cell the grid lacks, with the study's settings
    --nodes 2 / --isolation pod               how the selected runs execute (a new spec, hence a new name)

Flags filter the study's grid. A cell the grid lacks is an off-grid run, made only when asked
(`--off-grid`), so a typo never becomes an 8-GPU job; a student of another study is never
mixed in. Flags that would be ignored are refused. Every refusal is one line naming the flag
and what is allowed: a configuration error (exit 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from manager.study import STUDIES, study_runs
from valley.errors import ConfigError
from valley.spec import MODEL_PRESETS, RQ_OF_SUBSET, DataSpec, Isolation, RunSpec, format_size, parse_size


@dataclass(frozen=True)
class Selection:
    study: str = "valley"
    size: str | None = None
    model: str | None = None
    subset: str | None = None
    base: str | None = None
    runs: tuple[str, ...] = ()
    nodes: int | None = None
    #: a cell the study's grid lacks may become a new run
    off_grid: bool = False
    isolation: str | None = None


def _allowed(field: str, value: str, allowed: list[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{field}: unknown value {value!r}; allowed: {', '.join(allowed)}")


def select(sel: Selection) -> list[RunSpec]:
    """The RunSpecs `sel` names, in study order."""
    _allowed("--study", sel.study, list(STUDIES))
    grid = study_runs(sel.study)
    if sel.runs:
        ignored = [flag for flag, value in _filters(sel) if value is not None]
        if ignored or sel.off_grid:
            flags = " and ".join(ignored + ["--off-grid"] * sel.off_grid)
            raise ConfigError(f"{flags}: not used with --run, which names whole runs; drop {flags} or --run")
        by_key = {r.label: r for r in grid} | {r.name: r for r in grid}
        for wanted in sel.runs:
            _allowed("--run", wanted, [r.label for r in grid])
        chosen = [by_key[w] for w in dict.fromkeys(sel.runs)]
        return [executed(r, sel) for r in chosen]
    if sel.model is not None:
        students = sorted({r.model.preset for r in grid})
        if sel.model not in students and sel.model in MODEL_PRESETS:
            other = next(
                (name for name, make in STUDIES.items() if sel.model in {r.model.preset for r in make()}), None
            )
            raise ConfigError(
                f"--model: {sel.model!r} is not a student of study {sel.study!r} ({', '.join(students)})"
                + (f"; its runs are in --study {other}" if other else "")
            )
        _allowed("--model", sel.model, students)
    if sel.subset is not None:
        _allowed("--subset", sel.subset, list(RQ_OF_SUBSET))
    base = None
    if sel.base is not None:
        trained = [r for r in grid if not r.is_baseline]
        _allowed("--from", sel.base, [r.label for r in trained])
        base = next(r for r in trained if r.label == sel.base)
    size = None
    if sel.size is not None and sel.size != "baseline":
        try:
            size = parse_size(sel.size)
        except ValueError as error:
            raise ConfigError(f"--{error}") from None

    def matches(run: RunSpec) -> bool:
        if sel.model and run.model.preset != sel.model:
            return False
        if sel.size == "baseline":
            return run.is_baseline
        if size is not None and (run.data is None or run.data.size != size):
            return False
        if sel.subset and (run.data is None or run.data.subset != sel.subset):
            return False
        if sel.base is not None:
            return run.base is not None and run.base.label == sel.base
        if sel.subset or size is not None:  # a size or subset without --from: from the instruct model
            return run.base is None
        return True

    chosen = [r for r in grid if matches(r)]
    if sel.off_grid and (chosen or not (sel.model and size is not None)):
        raise ConfigError(
            "--off-grid: only for a --model and --size the study's grid lacks"
            + (f"; {', '.join(r.label for r in chosen)} is on the grid: drop --off-grid" if chosen else "")
        )
    if not chosen and sel.model and size is not None:
        if not sel.off_grid:
            sizes = sorted({r.data.size for r in grid if r.data is not None and r.model.preset == sel.model})
            raise ConfigError(
                f"--size: {sel.size} is off the grid of study {sel.study!r} for {sel.model} "
                f"({', '.join(format_size(s) for s in sizes)}{' with --subset ' + sel.subset if sel.subset else ''}); "
                "pass --off-grid to launch an off-grid run with the study's settings"
            )
        chosen = [custom_run(grid, sel.model, size, sel.subset or "random", base)]
    if not chosen:
        raise ConfigError(
            f"selection: no run of study {sel.study!r} matches; `valleyctl plan --study {sel.study}` lists them"
        )
    return [executed(r, sel) for r in chosen]


def _filters(sel: Selection) -> list[tuple[str, str | None]]:
    return [("--size", sel.size), ("--model", sel.model), ("--subset", sel.subset), ("--from", sel.base)]


def custom_run(grid: list[RunSpec], model: str, size: int, subset: str, base: RunSpec | None) -> RunSpec:
    """A cell the grid lacks, with the study's own train/eval settings and data source."""
    template = next(r for r in grid if not r.is_baseline)
    data = template.data.model_copy(update={"size": size, "subset": subset})
    return RunSpec(
        study=template.study,
        model=model,
        data=DataSpec.model_validate(data.model_dump()),
        train=template.train,
        eval=template.eval,
        base=base,
    )


def executed(run: RunSpec, sel: Selection) -> RunSpec:
    """`--nodes N` spreads training over N nodes; `--isolation pod|split` sets where the grader's
    gVisor runs. Either changes the spec, hence the name; a base run stays as the grid has it."""
    if sel.isolation is not None:
        _allowed("--isolation", sel.isolation, list(get_args(Isolation)))
    data = run.model_dump()
    if sel.nodes is not None and run.train is not None:
        data["train"]["nodes"] = sel.nodes
    if sel.isolation is not None:
        data["eval"]["isolation"] = sel.isolation
    changed = RunSpec.model_validate(data)
    return run if changed == run else changed
