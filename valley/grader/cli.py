"""`valley grade` and `valley grader …` (being built: issue 3)."""

from valley.errors import typer_app

grader_app = typer_app("Run the grader as a sidecar server.")


def grade_command() -> None:
    """Grade generations against LiveCodeBench problems."""
    raise SystemExit("valley grade is not built yet")
