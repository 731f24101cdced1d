"""`mlops`: the operator's command line (typer for commands, rich for tables, tqdm for progress).

The top-level commands are registered here, in the order `mlops --help` lists them; each command
group (`tenants`, `quarantine`, `models`) is a Typer of its own module.
"""

import typer

from mlops_assets.cli import db, demo, emulator, model_check, models, quarantine, runs, serve, status, tenants

app = typer.Typer(no_args_is_help=True, help="Multi-tenant prediction factory on Dagster.")
app.add_typer(tenants.app, name="tenants")
app.command("status")(status.status)
app.add_typer(quarantine.app, name="quarantine")
app.command("shop-emulator")(emulator.shop_emulator)
app.command("ingest")(runs.ingest)
app.command("train")(runs.train)
app.command("predict")(runs.predict)
app.command("backfill")(runs.backfill)
app.command("serve")(serve.serve)
app.command("demo")(demo.demo)
app.add_typer(models.app, name="models")
app.command("reproduce")(models.reproduce)
app.command("dev")(serve.dev)
app.add_typer(db.app, name="db")
app.command("model-check")(model_check.model_check)
