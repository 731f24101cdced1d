"""The package's shape holds: imports match the declared dependencies, the simulation stays apart,
core stays free of Dagster, and no module outgrows one screen of context by much."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from mlops_assets_tests.helpers import REPO

PACKAGE = REPO / "mlops_assets"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Declared and used without an import of our own, each for a reason a test can't read from the code.
USED_WITHOUT_IMPORT = {
    "dagster-webserver": "`mlops dev` runs `dagster dev`",
    "dagster-postgres": "dagster.production.yaml: Dagster's storage",
    "dagster-aws": "dagster.production.yaml: compute logs on S3",
    "boto3": "MLflow's S3 artifact store",
    "s3fs": "universal_pathlib's s3:// protocol",
    "psycopg": "the warehouse's PostgreSQL driver (postgresql+psycopg URLs)",
    "tzdata": "zoneinfo without an OS time zone database",
    "jinja2": "the dashboard's templates (fastapi.templating)",
    "itsdangerous": "the dashboard's session cookie (starlette's SessionMiddleware)",
    "python-multipart": "the dashboard's login form (fastapi.Form)",
}
# Imported only where its optional extra is installed (executors.py picks them by MLOPS_EXECUTOR).
EXTRAS_MODULES = {"dagster_celery": "celery", "celery": "celery", "dagster_k8s": "k8s", "kubernetes": "k8s"}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def _third_party(path: Path) -> set[str]:
    tops = {name.split(".")[0] for name in _imports(path)}
    return {top for top in tops if top not in sys.stdlib_module_names and top not in ("mlops_assets", "__future__")}


def _declared(extra: str | None = None) -> set[str]:
    requirements = (
        PYPROJECT["project"]["dependencies"] if extra is None else PYPROJECT["project"]["optional-dependencies"][extra]
    )
    return {_name(requirement) for requirement in requirements}


@cache
def _module_distributions() -> dict[str, list[str]]:
    return packages_distributions()


def _distributions(module: str) -> set[str]:
    return {_name(dist) for dist in _module_distributions().get(module, [])}


def test_every_imported_package_is_declared():
    runtime = _declared()
    missing = {}
    for path in _modules():
        for module in _third_party(path):
            declared = runtime | (_declared(EXTRAS_MODULES[module]) if module in EXTRAS_MODULES else set())
            if not _distributions(module) & declared:
                missing.setdefault(module, []).append(str(path.relative_to(REPO)))
    assert not missing, f"imported but not declared in pyproject.toml (fix: add them): {missing}"


def test_every_declared_package_is_used():
    imported = {dist for path in _modules() for module in _third_party(path) for dist in _distributions(module)}
    unused = _declared() - imported - set(USED_WITHOUT_IMPORT)
    assert not unused, f"declared but never imported (fix: drop them, or say why in USED_WITHOUT_IMPORT): {unused}"
    assert set(USED_WITHOUT_IMPORT) <= _declared(), "USED_WITHOUT_IMPORT names a package that is not declared"
    production = (REPO / "dagster.production.yaml").read_text()
    assert "dagster_aws." in production and "postgres:" in production


@pytest.mark.parametrize("extra", ["celery", "k8s"])
def test_optional_executors_stay_optional(extra):
    """Only executors.py and the Celery workers' app import what an extra installs, and only on use."""
    importers = sorted(
        str(path.relative_to(PACKAGE))
        for path in _modules()
        if any(EXTRAS_MODULES.get(module) == extra for module in _third_party(path))
    )
    assert set(importers) <= {"executors.py", "celery_app.py"}, importers


@pytest.mark.parametrize(("executor", "module"), [("celery", "dagster_celery"), ("k8s", "dagster_k8s")])
def test_an_executor_without_its_extra_names_the_extra(executor, module, monkeypatch):
    from mlops_assets.executors import run_executor
    from mlops_assets.settings import Settings

    monkeypatch.setitem(sys.modules, module, None)  # as if the extra were not installed
    with pytest.raises(ImportError, match=rf"pip install 'mlops-assets\[{executor}\]'"):
        run_executor(Settings.from_env({"MLOPS_EXECUTOR": executor}))


def test_only_the_simulation_and_the_demo_tools_import_the_simulation():
    allowed = ("sim/", "cli/demo.py", "cli/emulator.py", "cli/model_check.py")
    importers = [
        str(path.relative_to(PACKAGE))
        for path in _modules()
        if not str(path.relative_to(PACKAGE)).startswith(allowed)
        and any(name == "mlops_assets.sim" or name.startswith("mlops_assets.sim.") for name in _imports(path))
    ]
    assert not importers, f"production modules import the simulation: {importers}"


def test_core_never_imports_dagster():
    importers = [str(path.relative_to(PACKAGE)) for path in (PACKAGE / "core").rglob("*.py") if {"dagster"} & {
        name.split(".")[0] for name in _imports(path)
    }]  # fmt: skip
    assert not importers, importers


def test_no_module_outgrows_one_concern():
    long = {str(p.relative_to(PACKAGE)): n for p in _modules() if (n := len(p.read_text().splitlines())) > 450}
    assert not long, f"split these by concern (lines): {long}"
