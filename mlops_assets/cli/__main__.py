"""`python -m mlops_assets.cli`: how tests and the demo spawn the CLI in a process of its own."""

from mlops_assets.cli import app

app()
