"""Pure logic of the platform. Nothing in this package imports dagster."""
