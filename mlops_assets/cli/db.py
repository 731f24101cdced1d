"""`mlops db upgrade`: the warehouse schema step that deploys run before the API starts."""

from __future__ import annotations

import typer

from mlops_assets.cli.common import console, settings

app = typer.Typer(no_args_is_help=True, help="The warehouse database's schema.")


@app.command("upgrade")
def upgrade():
    """Bring the warehouse schema to this release's revision (a no-op when it is there already)."""
    from mlops_assets.core.warehouse.schema import upgrade_schema

    upgraded = upgrade_schema(settings().warehouse_url)
    before = upgraded.before or "empty"
    if upgraded.before == upgraded.after:
        console.print(f"warehouse schema already at revision {upgraded.after}")
    else:
        console.print(f"warehouse schema upgraded: {before} -> {upgraded.after}")
