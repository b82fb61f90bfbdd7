"""Reads of the cap policy (runs.selectors.caps)."""

import pytest

from runs.selectors.caps import effective_caps_of


@pytest.mark.django_db
def test_effective_caps_merge_the_agent_override_in_one_query(django_assert_num_queries):
    from runs.models import CapPolicy

    CapPolicy.objects.create(scope="demo-loop", values={"max_tool_calls": 7})
    with django_assert_num_queries(1):
        caps = effective_caps_of(["demo-loop", "demo-support"])
    assert caps["demo-loop"]["max_tool_calls"] == 7
    assert caps["demo-support"]["max_tool_calls"] == 20
