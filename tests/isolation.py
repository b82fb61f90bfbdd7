"""Loaded with `-p tests.isolation` before Django is configured: gives every test session its own
data folder (SQLite file, file broker) and its own queue, so a suite never shares state or work
with a running `make run` or with another suite on the same broker."""

import os
import tempfile
import uuid

_data_dir = tempfile.mkdtemp(prefix="agentops-test-")
os.environ["AGENTOPS_DATA_DIR"] = _data_dir
os.environ["AGENTOPS_QUEUE"] = f"agentops-test-{uuid.uuid4().hex[:10]}"
# Webhook retries a fifth of a second apart, so a test sees an endpoint answer after a failure.
os.environ.setdefault("AGENTOPS_WEBHOOK_RETRY_MS", "200")
# Playwright's sync API keeps an event loop in the test thread; the ORM calls made beside it are
# still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
# Test-only agents, registered in this process and in the worker processes the suite starts.
os.environ["AGENTOPS_AGENT_MODULES"] = ",".join(
    m for m in (os.environ.get("AGENTOPS_AGENT_MODULES", ""), "tests.agents") if m
)
