"""With the cache (Redis) down, ingest goes on: the throttle lets requests through, logs and
counts them, and /health says the service is degraded rather than down."""

import uuid

import pytest

from runs.models import Event, Run
from tests.ingest.conftest import post_json

pytestmark = pytest.mark.django_db

DOWN = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}


@pytest.fixture
def cache_down(settings):
    settings.CACHES = DOWN
    settings.AGENTOPS_INGEST_RATE_PER_SECOND = 1


def test_ingest_is_stored_while_the_cache_is_down(client, ingest_key, cache_down, caplog):
    for _ in range(3):  # past the rate of 1 per second: nothing can count, nothing is refused
        run_id = uuid.uuid4()
        body = {
            "runs": [{"id": str(run_id), "agent": "remote-bot"}],
            "events": [{"id": str(uuid.uuid4()), "run_id": str(run_id), "kind": "log"}],
        }
        response = post_json(client, "/api/v1/ingest", body, ingest_key)
        assert response.status_code == 200, response.content
        assert Event.objects.filter(run_id=run_id).count() == 1
    assert Run.objects.count() == 3
    assert "cache unavailable" in caplog.text


def test_otlp_is_stored_while_the_cache_is_down(client, ingest_key, cache_down):
    trace = uuid.uuid4().hex
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace,
                                "spanId": uuid.uuid4().hex[:16],
                                "name": "invoke_agent bot",
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000001000000000",
                                "attributes": [
                                    {
                                        "key": "gen_ai.operation.name",
                                        "value": {"stringValue": "invoke_agent"},
                                    }
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    response = post_json(client, "/api/v1/otlp/v1/traces", body, ingest_key)
    assert response.status_code == 200, response.content
    assert Run.objects.filter(id=uuid.UUID(trace)).exists()


def test_health_says_degraded_and_counts_what_went_on_without_the_cache(
    client, ingest_key, cache_down
):
    run_id = uuid.uuid4()
    post_json(client, "/api/v1/ingest", {"runs": [{"id": str(run_id), "agent": "a"}]}, ingest_key)
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["cache"]["ok"] is False and body["database"]["ok"] is True
    assert "requests went on without it" in body["cache"]["detail"]
