"""Fixtures for the ingest door: API keys, a batch poster, a database that can be taken down,
and a real HTTP server started on demand."""

import copy
import json
import threading
from contextlib import contextmanager

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import connections

from runs.services.keys import api_key_create
from tests.throwaway import free_port


@pytest.fixture
def make_key():
    """make_key("ingest", "runs:read") → the secret of a new key holding those scopes. The
    test itself asks for `db` or `transactional_db`."""

    def make(*scopes: str, name: str = "test-key") -> str:
        return api_key_create(name=name, scopes=list(scopes or ("ingest",)))[1]

    return make


@pytest.fixture
def ingest_key(make_key):
    return make_key("ingest")


def bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def post_json(client, path: str, body, secret: str | None, **extra):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    headers = bearer(secret) if secret else {}
    return client.post(path, data=data, content_type="application/json", **headers, **extra)


@contextmanager
def database_down():
    """Make every new connection of this process fail for real, as when the database is
    stopped: PostgreSQL is pointed at a closed port, SQLite at a file that cannot be opened.
    Needs `transactional_db` (the test's own connection is closed). Restored on exit."""
    conn = connections["default"]
    settings_dict = conn.settings_dict  # shared by every thread's connection object
    saved = copy.deepcopy({k: settings_dict[k] for k in ("NAME", "HOST", "PORT", "OPTIONS")})
    _drop_connections(conn)
    if conn.vendor == "postgresql":
        settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))
        options = dict(settings_dict["OPTIONS"])
        if options.get("pool"):
            # The pool's own wait (DATABASE_POOL_TIMEOUT, 2 s) bounds how long a request waits.
            options["pool"] = {**options["pool"], "min_size": 0}
        settings_dict["OPTIONS"] = options
    else:
        settings_dict["NAME"] = "/nonexistent-agentops-dir/down.sqlite3"
    try:
        yield
    finally:
        _drop_connections(conn)
        settings_dict.update(saved)


def _drop_connections(conn) -> None:
    conn.close()
    if conn.vendor == "postgresql" and conn.settings_dict["OPTIONS"].get("pool"):
        conn.close_pool()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class AppServer:
    """The Django app served over real HTTP from a thread, on a port chosen up front, so a
    client can be pointed at it before it starts."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = None
        self._thread = None

    def start(self):
        self._server = ThreadedWSGIServer(("127.0.0.1", self.port), _QuietHandler)
        # Not get_wsgi_application(): it would run django.setup() again, and its logging
        # configuration would unhook pytest's log capture.
        self._server.set_app(WSGIHandler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None


@pytest.fixture
def app_server():
    """An AppServer, not yet started (call .start()); stopped after the test."""
    server = AppServer()
    yield server
    server.stop()
