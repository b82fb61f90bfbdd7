import uuid

from runs.engine.ids import uuid7, uuid_range_for_prefix


def test_uuid7_is_version_7_and_rfc_variant():
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_uuid7_sorts_in_creation_order():
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_prefix_range_covers_exactly_the_prefix():
    value = uuid7()
    text = str(value)
    low, high = uuid_range_for_prefix(text[:8])
    assert low <= value <= high
    assert str(low).startswith(text[:8]) and str(high).startswith(text[:8])
    # Dashes are optional and case does not matter.
    assert uuid_range_for_prefix(text[:13].upper()) == uuid_range_for_prefix(
        text[:13].replace("-", "")
    )


def test_prefix_range_refuses_short_or_non_hex_text():
    assert uuid_range_for_prefix("abc1234") is None  # 7 digits
    assert uuid_range_for_prefix("zzzzzzzz") is None
    assert uuid_range_for_prefix("") is None
    assert uuid_range_for_prefix("0" * 33) is None
