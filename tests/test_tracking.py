"""What reaches MLflow: the config without its secrets, and no run left RUNNING by a kill."""

from __future__ import annotations

import pytest

from ld_spark.release import tracking

STORAGE_SECRETS = {
    "spark.hadoop.fs.s3a.access.key": "AKIAEXAMPLEACCESS",
    "spark.hadoop.fs.s3a.secret.key": "s3-secret-value",
    "spark.hadoop.fs.s3a.session.token": "s3-session-token-value",
    "spark.hadoop.fs.azure.account.key.myacct.dfs.core.windows.net": "azure-account-key-value",
    "spark.hadoop.fs.azure.account.oauth2.client.secret": "azure-client-secret-value",
    "spark.ssl.keyStorePassword": "keystore-password-value",
    "spark.hadoop.fs.s3a.aws.credentials.provider": "credentials-provider-value",
    "spark.hadoop.javax.jdo.option.ConnectionPassword": "metastore-passwd-value",
}
HARMLESS = {"spark.sql.adaptive.coalescePartitions.enabled": "true", "spark.ssl.keyStore": "/etc/ssl/ld.jks"}


def with_secrets(config, tracking_uri: str):
    """The test config with storage credentials in spark.extra and a password in the tracking URI."""
    return config.model_copy(
        update={
            "spark": config.spark.model_copy(update={"extra": {**STORAGE_SECRETS, **HARMLESS}}),
            "mlflow": config.mlflow.model_copy(update={"tracking_uri": tracking_uri}),
        }
    )


def test_params_hide_storage_secrets_and_the_tracking_uri_password(config):
    params = tracking.run_params(with_secrets(config, "postgresql://ld_user:pg-pass-value@db.example:5432/mlflow"))
    for name in STORAGE_SECRETS:
        assert params[f"spark.extra.{name}"] == "***", name
    assert params["mlflow.tracking_uri"] == "postgresql://ld_user:***@db.example:5432/mlflow"
    logged = "\n".join(params.values())
    for secret in [*STORAGE_SECRETS.values(), "pg-pass-value"]:
        assert secret not in logged


def test_params_keep_settings_that_only_name_where_a_key_is(config):
    params = tracking.run_params(with_secrets(config, "sqlite:///mlflow.db"))
    assert params["linkage.key_env"] == config.linkage.key_env
    assert params["linkage.key_file"] == config.linkage.key_file
    assert params["linkage.create_key_if_missing"] == str(config.linkage.create_key_if_missing)
    assert params["spark.extra.spark.ssl.keyStore"] == "/etc/ssl/ld.jks"
    assert params["spark.extra.spark.sql.adaptive.coalescePartitions.enabled"] == "true"
    assert params["mlflow.tracking_uri"] == "sqlite:///mlflow.db"
    assert params["spark.master"] == config.spark.master


@pytest.mark.parametrize(
    "name",
    [
        "fs.s3a.access.key",
        "fs.azure.account.key.acct.blob.core.windows.net",
        "spark.authenticate.secret",
        "x.privateKey",
        "x.apiKey",
        "x.api_key",
        "x.SESSION_TOKEN",
        "x.db_passwd",
        "x.Credentials.file",
    ],
)
def test_secret_names(name):
    assert tracking.is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "linkage.key_env",
        "linkage.key_file",
        "linkage.create_key_if_missing",
        "spark.ssl.keyStore",
        "spark.io.encryption.keySizeBits",
        "mlflow.tracking_uri",
    ],
)
def test_names_that_are_not_secret(name):
    assert not tracking.is_secret_name(name)


@pytest.mark.parametrize(
    "uri, shown",
    [
        ("postgresql://user:pw@host/db", "postgresql://user:***@host/db"),
        ("mysql+pymysql://user:p@ss/w0rd@host:3306/db", "mysql+pymysql://user:***@host:3306/db"),
        ("https://user:pw@mlflow.example/", "https://user:***@mlflow.example/"),
        ("jdbc:sqlserver://host:1433;user=ld;password=pw", "jdbc:sqlserver://host:1433;user=ld;password=***"),
        ("https://mlflow.example/api?token=abc&x=1", "https://mlflow.example/api?token=***&x=1"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ],
)
def test_uri_passwords_are_cut_out(uri, shown):
    assert tracking.redact_uri(uri) == shown


def _store(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_logged_run_holds_no_secret(config, tmp_path):
    import mlflow

    configured = with_secrets(config, _store(tmp_path))
    with tracking.run(configured, tmp_path / "out", run_name="secrets") as active:
        run_id = active.info.run_id
    params = mlflow.tracking.MlflowClient().get_run(run_id).data.params
    assert params["spark.extra.spark.hadoop.fs.s3a.secret.key"] == "***"
    for secret in STORAGE_SECRETS.values():
        assert secret not in params.values()


def test_run_left_running_by_a_kill_on_the_same_out_dir_is_marked_killed(config, tmp_path, capsys):
    import mlflow

    configured = config.model_copy(
        update={"mlflow": config.mlflow.model_copy(update={"tracking_uri": _store(tmp_path)})}
    )
    out, other_out = tmp_path / "out", tmp_path / "other_out"
    mlflow.set_tracking_uri(configured.mlflow.tracking_uri)
    experiment = mlflow.set_experiment(configured.mlflow.experiment).experiment_id
    client = mlflow.tracking.MlflowClient()
    killed = client.create_run(experiment, tags={tracking.OUT_DIR_TAG: str(out)}).info.run_id  # never ended
    elsewhere = client.create_run(experiment, tags={tracking.OUT_DIR_TAG: str(other_out)}).info.run_id
    finished = client.create_run(experiment, tags={tracking.OUT_DIR_TAG: str(out)}).info.run_id
    client.set_terminated(finished, "FINISHED")

    with tracking.run(configured, out, run_name="next") as active:
        current = active.info.run_id
        assert client.get_run(current).data.tags[tracking.OUT_DIR_TAG] == str(out.resolve())

    assert client.get_run(killed).info.status == "KILLED"
    assert client.get_run(elsewhere).info.status == "RUNNING"  # another OUT_DIR: its run may be alive
    assert client.get_run(finished).info.status == "FINISHED"
    assert client.get_run(current).info.status == "FINISHED"
    said = [line for line in capsys.readouterr().out.splitlines() if killed in line]
    assert len(said) == 1 and "KILLED" in said[0] and str(out) in said[0]


def test_out_dir_is_matched_whichever_directory_the_run_starts_from(config, tmp_path, monkeypatch):
    import mlflow

    configured = config.model_copy(
        update={"mlflow": config.mlflow.model_copy(update={"tracking_uri": _store(tmp_path)})}
    )
    mlflow.set_tracking_uri(configured.mlflow.tracking_uri)
    experiment = mlflow.set_experiment(configured.mlflow.experiment).experiment_id
    client = mlflow.tracking.MlflowClient()
    (tmp_path / "out").mkdir()
    killed = client.create_run(experiment, tags={tracking.OUT_DIR_TAG: str(tmp_path / "out")}).info.run_id
    monkeypatch.chdir(tmp_path)
    with tracking.run(configured, "out", run_name="relative"):  # the same OUT_DIR, named relatively
        pass
    assert client.get_run(killed).info.status == "KILLED"
