"""What a fork deploys with: the CI workflow, the container image and the one-machine compose file.

No container builder runs here (and no base image could be pulled), so the image is linted, not built;
the files are checked against their schemas and against each other: the workflow runs what `.ci/run`
runs, every command the image documents is installed, and the compose file, the Helm values and the
project agree on the image and the code location's address.
"""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from mlops_assets_tests.helpers import REPO

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed (fix: make install, which installs the test tools of .[dev])"
    return found


def _schema_check(builtin: str, path: Path) -> None:
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", builtin, str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _readme_test_command() -> str:
    block = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    return next(line.split("#")[0].strip() for line in block.splitlines() if line.startswith("make test"))


def test_the_workflow_is_valid_and_runs_the_steps_of_ci_run():
    workflow_path = REPO / ".github/workflows/ci.yml"
    _schema_check("vendor.github-workflows", workflow_path)
    _schema_check("custom.github-workflows-require-timeout", workflow_path)
    jobs = yaml.safe_load(workflow_path.read_text())["jobs"]
    assert [step["run"] for step in jobs["test"]["steps"] if "run" in step][-1] == "bash .ci/run"
    assert "python:3.11-bookworm" in jobs["test"]["container"], "Debian, for Debian's Chromium and PostgreSQL"
    assert set(jobs["test"]["services"]) == {"postgres", "redis"}
    assert any(step.get("run") == "ruff check . && ruff format --check ." for step in jobs["lint"]["steps"])
    ci_run = [line.split("#")[0].strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    commands = [line for line in ci_run if line and not line.startswith(("set ", "cd ", "export "))]
    assert commands == ["bash .ci/setup", "make model-check", _readme_test_command()], commands
    assert any(step.get("run") == "make model-check" for step in jobs["model-check"]["steps"])


def test_the_image_passes_hadolint_and_documents_installed_commands():
    dockerfile = REPO / "Dockerfile"
    result = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "info", str(dockerfile)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    documented = re.findall(r"^#   [\w ,]+?\s{2,}(?:\(default command\) )?([\w-]+) ", dockerfile.read_text(), re.M)
    assert set(documented) == {"dagster", "dagster-webserver", "dagster-daemon", "celery", "mlops"}
    for command in documented:
        _tool(command)


def test_compose_the_helm_values_and_the_project_agree():
    compose_path = REPO / "deploy/compose.yaml"
    _schema_check("vendor.compose-spec", compose_path)
    compose = yaml.safe_load(compose_path.read_text())
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    helm_image = yaml.safe_load((REPO / "deploy/k8s/values.yaml").read_text())["dagster-user-deployments"][
        "deployments"
    ][0]["image"]
    assert helm_image["tag"] == version
    ours = {name: service for name, service in compose["services"].items() if "mlops" in service.get("image", "")}
    assert set(ours) == {"migrate", "code-location", "webserver", "daemon", "worker", "api"}
    for service in ours.values():
        assert service["image"] == f"${{MLOPS_IMAGE:-{helm_image['repository']}:{version}}}"
    workspace = yaml.safe_load((REPO / "deploy/workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    command = ours["code-location"]["command"]
    assert workspace["host"] == "code-location" and str(workspace["port"]) == command[command.index("-p") + 1]
    for name in ("webserver", "daemon"):
        assert "deploy/workspace.yaml" in ours[name]["command"]
    assert (REPO / "deploy/compose/postgres-init.sql").is_file()
    assert "deploy/compose.env" in (REPO / ".gitignore").read_text(), "passwords never committed"


@pytest.mark.parametrize("args", [["db", "upgrade", "--help"], ["serve", "--help"]])
def test_the_images_mlops_commands_exist(args):
    result = subprocess.run([_tool("mlops"), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
