"""`valley train` (being built: issue 5)."""


def train_command() -> None:
    """Fine-tune a student with torchtune."""
    raise SystemExit("valley train is not built yet")
