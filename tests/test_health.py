import pytest


@pytest.mark.django_db
def test_health_reports_database_and_broker(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is True


@pytest.mark.django_db
def test_health_is_503_naming_the_broker_when_it_is_unreachable(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["broker"]["ok"] is False
    assert body["database"]["ok"] is True


@pytest.mark.django_db
def test_health_is_503_when_the_file_broker_folder_is_gone(client, settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path / "missing")}
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert "missing" in response.json()["broker"]["detail"]


def test_openapi_schema_is_served(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert "/api/v1/health" in response.json()["paths"]


def test_unknown_api_path_is_a_json_404(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_part_that_does_not_answer_in_time_counts_as_down(monkeypatch):
    import threading

    from agentops import health

    hung = threading.Event()
    monkeypatch.setattr(health, "database_status", lambda: hung.wait(30) or (True, "late"))
    try:
        found = health.statuses(timeout=0.2)
    finally:
        hung.set()
    assert found["database"] == (False, "no answer within 0.2 s")
    assert found["broker"][0] is True
