"""`valley data …` (being built: issue 4)."""

from valley.errors import typer_app

data_app = typer_app("Build, label and format SFT data subsets.")
