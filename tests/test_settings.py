import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from agentops.settings import broker_from_url, database_from_url

ROOT = Path(__file__).resolve().parent.parent


def test_sqlite_default_lives_in_data_dir_and_allows_concurrent_writers(tmp_path):
    db = database_from_url("sqlite:///", tmp_path)
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == str(tmp_path / "agentops.sqlite3")
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]


def test_sqlite_absolute_path(tmp_path):
    assert database_from_url("sqlite:////srv/data/a.db", tmp_path)["NAME"] == "/srv/data/a.db"


def test_postgres_url_is_parsed(tmp_path):
    db = database_from_url(
        "postgres://u%40x:p%2Fw@db.example:5433/agentops?sslmode=require", tmp_path
    )
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "agentops", "u@x", "p/w", "db.example", "5433",
    )  # fmt: skip
    assert db["OPTIONS"]["sslmode"] == "require"
    assert db["OPTIONS"]["pool"]["max_size"] == 20


def test_postgres_waits_at_most_two_seconds_and_checks_pooled_connections(tmp_path, monkeypatch):
    db = database_from_url("postgres://u@db.example/agentops", tmp_path)
    assert db["OPTIONS"]["connect_timeout"] == 2  # a connection attempt to a host that is gone
    assert db["OPTIONS"]["pool"]["timeout"] == 2  # waiting for a pooled connection
    assert db["CONN_HEALTH_CHECKS"] is True  # a connection a restart closed is replaced
    monkeypatch.setenv("DATABASE_POOL_MAX", "0")
    assert database_from_url("postgres://u@db.example/agentops", tmp_path)["CONN_HEALTH_CHECKS"]
    monkeypatch.setenv("DATABASE_CONNECT_TIMEOUT", "5")
    db = database_from_url("postgres://u@db.example/agentops?connect_timeout=1", tmp_path)
    assert db["OPTIONS"]["connect_timeout"] == "1"  # the URL's own wins


@pytest.mark.parametrize("url", ["mysql://x/y", "nonsense", "postgres://host/"])
def test_bad_database_url_names_the_variable(url, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_from_url(url, tmp_path)


def test_broker_schemes():
    assert broker_from_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert broker_from_url("amqp://guest:guest@localhost//").startswith("amqp")
    with pytest.raises(ImproperlyConfigured, match="CELERY_BROKER_URL"):
        broker_from_url("kafka://x")


@pytest.mark.parametrize("env", [{}, {"CELERY_BROKER_URL": "filesystem://"}])
def test_the_file_broker_connects_without_kombus_no_hostname_warning(env, tmp_path):
    # What `make run` starts: the default broker, connected as the worker and beat connect.
    code = (
        "import logging; logging.basicConfig()\n"
        "from agentops.celery import app\n"
        "with app.connection_for_write() as c:\n"
        "    c.ensure_connection(max_retries=1); c.clone()._info(); print(c.as_uri())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "AGENTOPS_DATA_DIR": str(tmp_path),
             "DJANGO_SETTINGS_MODULE": "agentops.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("filesystem://")
    assert "No hostname" not in result.stderr and "WARNING" not in result.stderr


@pytest.mark.parametrize(
    "env, variable",
    [({"DATABASE_URL": "oracle://x/y"}, "DATABASE_URL"),
     ({"CELERY_BROKER_URL": "zmq://x"}, "CELERY_BROKER_URL"),
     ({"DEBUG": "maybe"}, "DEBUG")],
)  # fmt: skip
def test_bad_value_stops_startup_with_a_message(env, variable, tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "AGENTOPS_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert variable in result.stderr


def test_deploy_checks_are_clean_in_production_mode(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "AGENTOPS_DATA_DIR": str(tmp_path),
            "DEBUG": "0",
            "SECRET_KEY": "k" * 20 + "-production-secret-that-is-long-and-random-9f8e7d6c5b4a",
            "ALLOWED_HOSTS": "agentops.example.com",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_no_model_change_lacks_a_migration():
    result = subprocess.run(
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
