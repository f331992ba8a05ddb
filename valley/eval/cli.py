"""`valley eval` (being built: issue 6)."""


def eval_command() -> None:
    """Evaluate a student on LiveCodeBench."""
    raise SystemExit("valley eval is not built yet")
