"""`valleyctl store`: a local MLflow store copied elsewhere, made browsable where it now lies."""

from __future__ import annotations

from manager.cli.options import JsonOpt, TrackingOpt
from manager.cli.output import Output
from valley.cli_kit import typer_app

store_app = typer_app(
    "Look after a local MLflow store (sqlite database and artifact folders).\n\n"
    "Example: valleyctl store relink --tracking-uri sqlite:///copied/mlflow.db"
)


@store_app.command("relink")
def relink_command(tracking_uri: TrackingOpt = None, as_json: JsonOpt = False) -> None:
    """Point a copied store's artifact locations at the folders beside its database.

    MLflow records absolute artifact paths; after copying a demo's mlflow.db with its mlartifacts/
    folder to another directory or machine, run this once there, then browse it as usual.

    \b
    Examples:
      valleyctl store relink --tracking-uri sqlite:////data/valley-demo/mlflow.db
      cd copied && valleyctl store relink && mlflow ui --backend-store-uri sqlite:///mlflow.db
    """
    from manager.store import relink
    from manager.tracking import resolve_tracking_uri

    result = relink(resolve_tracking_uri(tracking_uri))
    out = Output(as_json)

    def human() -> None:
        if not result.moved:
            out.line(f"{result.database}: every artifact location already lies beside it; nothing to change")
            return
        for old, new in result.moved.items():
            out.line(f"{old} -> {new}")
        out.line(", ".join(f"{count} {table}" for table, count in result.rows.items() if count) + " relinked")

    out.result(result, human)
