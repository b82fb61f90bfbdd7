"""schemathesis against the OpenAPI schema the app serves: every /api/v1 operation, with
generated requests (valid ones and invalid ones; an admin key, so scopes never hide a path),
must answer without a 5xx and with a status, content type, headers and body that its schema
documents.

schemathesis' own pytest plugin does not run under pytest 9, so each operation is a
parametrized test that draws its cases from schemathesis' hypothesis strategy.
"""

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ingest.api import api
from runs.models import Run
from runs.services.keys import api_key_create

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
_PATHS = api.get_openapi_schema()["paths"]
OPERATIONS = [(method.upper(), path) for path, methods in _PATHS.items() for method in methods]
# Invalid requests only exist for operations that take something (parameters or a body).
CASES = [
    pytest.param(method, path, mode, id=f"{method}-{path}-{mode.value}")
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode == GenerationMode.POSITIVE
    or _PATHS[path][method.lower()].get("parameters")
    or "requestBody" in _PATHS[path][method.lower()]
]


@pytest.fixture
def served_schema(transactional_db):
    # Not get_wsgi_application(): that would run django.setup() (and its logging config) again.
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", WSGIHandler())


@pytest.fixture
def admin_key(transactional_db):
    # A run to find, so generated ids and prefixes can hit one.
    Run.objects.create(id="0190a6b2-7c1e-7d4b-9a4e-3f2a1b0c9d8e", agent="demo-support")
    return api_key_create(name="fuzz", scopes=["admin"])[1]


def test_every_api_v1_operation_is_fuzzed():
    assert len(OPERATIONS) >= 8 and len(CASES) > len(OPERATIONS)
    assert {("POST", "/api/v1/ingest"), ("POST", "/api/v1/otlp/v1/traces")} <= set(OPERATIONS)


@pytest.mark.parametrize("method, path, mode", CASES)
def test_operation_answers_as_documented(served_schema, admin_key, method, path, mode):
    operation = served_schema[path][method]
    headers = {"Authorization": f"Bearer {admin_key}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,  # no .hypothesis folder in the tree; each run explores afresh
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()
