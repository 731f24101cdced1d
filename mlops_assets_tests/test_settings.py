import pytest

from mlops_assets.settings import Settings, SettingsError


def test_local_profile_keeps_everything_under_mlops_home(tmp_path):
    settings = Settings.from_env({"MLOPS_HOME": str(tmp_path)})
    assert settings.profile == "local"
    assert settings.lake_url == str(tmp_path / "lake")
    assert settings.warehouse_url == f"sqlite:///{tmp_path / 'warehouse.db'}"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert settings.dagster_home == tmp_path / "dagster"


def test_default_home_is_dot_mlops_of_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).home == tmp_path / ".mlops"


def test_explicit_dagster_home_is_respected(tmp_path):
    settings = Settings.from_env({"MLOPS_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "elsewhere")})
    assert settings.dagster_home == tmp_path / "elsewhere"


def test_production_requires_its_servers():
    with pytest.raises(SettingsError, match="MLOPS_LAKE_URL"):
        Settings.from_env({"MLOPS_PROFILE": "production"})


def test_production_profile_reads_s3_and_postgres():
    settings = Settings.from_env(
        {
            "MLOPS_PROFILE": "production",
            "MLOPS_LAKE_URL": "s3://bucket/prefix",
            "MLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "MLOPS_WAREHOUSE_URL": "postgresql+psycopg://u@db/warehouse",
            "MLOPS_MLFLOW_TRACKING_URI": "postgresql+psycopg2://u@db/mlflow",
        }
    )
    assert (settings.lake_url, settings.s3_endpoint_url) == ("s3://bucket/prefix", "http://127.0.0.1:9000")


@pytest.mark.parametrize(
    "env",
    [{"MLOPS_PROFILE": "staging"}, {"MLOPS_PARTITION_WINDOW_DAYS": "3"}, {"MLOPS_PARTITION_WINDOW_DAYS": "ninety"}],
)
def test_bad_values_are_named(env):
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)
