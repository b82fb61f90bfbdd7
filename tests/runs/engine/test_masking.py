import copy
import uuid

import pytest

from runs.engine.masking import FIELD_MARKER, compile_patterns, is_secret_key, mask, mask_text

OPENAI_LEGACY = "sk-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7dEf0hIj3kLm6n"
OPENAI_PROJECT = "sk-proj-" + "Xy9_Zw-8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa" * 4
ANTHROPIC = "sk-ant-api03-" + "aB3_cD4-eF5gH6iJ7kL8mN9oP0qR1sT2uV3wX4yZ5" * 2 + "AA"
AWS = "AKIAIOSFODNN7EXAMPLE"
GITHUB_CLASSIC = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GITHUB_FINE = "github_pat_11ABCDEFG0" + "abcdefghijklmnopqrstuvwxyz_0123456789ABCDEFGHIJKLMNOPQRS"
SLACK = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
GOOGLE = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA7V1kZ3Kz0J3P2bW2nVq6yT2wQbq3\n"
    "uG6XKQk2p1m0y5bXbZV5x6Tm8sJ7mJQ==\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    "secret, kind",
    [
        (OPENAI_LEGACY, "openai_key"),
        (OPENAI_PROJECT, "openai_key"),
        (ANTHROPIC, "anthropic_key"),
        (AWS, "aws_access_key"),
        (GITHUB_CLASSIC, "github_token"),
        (GITHUB_FINE, "github_token"),
        (SLACK, "slack_token"),
        (GOOGLE, "google_api_key"),
        (STRIPE, "stripe_key"),
        (JWT, "jwt"),
        (PEM, "private_key"),
    ],
)
def test_known_key_shapes_are_replaced_by_their_kind_and_the_text_around_stays(secret, kind):
    text = f"Use {secret} for the call."
    assert mask_text(text) == f"Use [masked:{kind}] for the call."


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "Authorization: Bearer abc123def456ghi789jkl",
            "Authorization: Bearer [masked:bearer_token]",
        ),
        (
            "curl -H 'authorization: bearer " + JWT + "'",
            "curl -H 'authorization: bearer [masked:jwt]'",
        ),
        ("login with password=hunter2 please", "login with password=[masked:credential] please"),
        ("PASSWORD = 'correct horse battery'", "PASSWORD = '[masked:credential]'"),
        (
            "Your password: Tr0ub4dor&3, then log in",
            "Your password: [masked:credential], then log in",
        ),
        ("pass=1 password=a;b&c; x", "pass=1 password=[masked:credential]; x"),
        (
            "https://x.test/cb?access_token=abc123&state=7",
            "https://x.test/cb?access_token=[masked:credential]&state=7",
        ),
        ('{"api_key": "my key 42", "n": 1}', '{"api_key": "[masked:credential]", "n": 1}'),
        ('{\\"client_secret\\": \\"s3cr3t\\"}', '{\\"client_secret\\": \\"[masked:credential]\\"}'),
        (
            "DATABASE_URL=postgres://app:pa55word@db:5432/app",
            "DATABASE_URL=postgres://app:[masked:url_password]@db:5432/app",
        ),
    ],
)
def test_a_labelled_secret_keeps_its_label(text, expected):
    assert mask_text(text) == expected


def test_a_truncated_private_key_block_is_masked_to_the_end():
    text = "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUA"
    assert mask_text(text) == "key:\n[masked:private_key]"


def test_a_key_inside_a_labelled_value_keeps_the_more_precise_marker():
    assert mask_text(f"api_key={OPENAI_PROJECT}") == "api_key=[masked:openai_key]"
    assert mask_text(f'"token": "{JWT}"') == '"token": "[masked:jwt]"'


def test_several_secrets_in_one_string_are_all_masked():
    text = f"{AWS} and {GITHUB_CLASSIC}, password=x1"
    masked = mask_text(text)
    assert (
        masked == "[masked:aws_access_key] and [masked:github_token], password=[masked:credential]"
    )


@pytest.mark.parametrize(
    "text",
    [
        str(uuid.UUID("6f1c2b1e-8d5a-4a57-9d3e-0c6b7a2f9e10")),
        "6f1c2b1e8d5a4a579d3e0c6b7a2f9e10",
        "fixed in commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "The token limit was reached, so the model stopped mid-sentence.",
        "Token: the unit a model reads and writes.",
        "Please reset your password using the link we sent you.",
        "The secret to good support is listening.",
        "The bearer responsibilities of a courier are many.",
        "We use sk-learn and a task-management-framework-for-everything here.",
        "Orders shipped to Asia via ACCA partners take 5 days.",
        "See https://docs.example.com/guide#section-2 for details.",
        "Call the API with your key from the dashboard.",
        "x = 1; y = x + 2; print(f'{y=}')",
        "ghost_writer and github_actions are unrelated",
        "eyJ is how base64 JSON starts",
        "",
        "short",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert mask_text(text) == text


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "passwd",
        "secret",
        "api_key",
        "apiKey",
        "API-KEY",
        "x-api-key",
        "apikey",
        "token",
        "access_token",
        "refresh-token",
        "Authorization",
        "http.request.header.authorization",
        "private_key",
        "client_secret",
        "Client-Secret",
        "db_password",
        "aws_secret_access_key",
        "cookie",
    ],
)
def test_values_under_secret_keys_are_masked_whole(key):
    assert is_secret_key(key)
    assert mask({key: "hunter2"}) == {key: FIELD_MARKER}
    assert mask({key: 123456}) == {key: FIELD_MARKER}
    assert mask({key: ["a", "b"]}) == {key: FIELD_MARKER}
    assert mask({key: {"nested": "x"}}) == {key: FIELD_MARKER}


@pytest.mark.parametrize(
    "key", ["max_tokens", "input_tokens", "tokens", "key", "secret_name", "author", "passage", 3]
)
def test_ordinary_keys_are_not_secret(key):
    assert not is_secret_key(key)
    assert mask({key: "plain value"}) == {key: "plain value"}


def test_empty_or_boolean_values_under_secret_keys_are_kept_because_they_hide_nothing():
    value = {"password": None, "token": "", "is_secret": True, "has_api_key": False}
    assert mask(value) == value


def test_mask_walks_nested_structures_and_leaves_other_values_alone():
    value = {
        "messages": [
            {"role": "user", "content": f"my key is {OPENAI_LEGACY}"},
            {"role": "tool", "content": {"headers": {"Authorization": "Bearer x"}}},
        ],
        "args": ("ok", 3, 2.5, None, True),
        "max_tokens": 512,
    }
    assert mask(value) == {
        "messages": [
            {"role": "user", "content": "my key is [masked:openai_key]"},
            {"role": "tool", "content": {"headers": {"Authorization": FIELD_MARKER}}},
        ],
        "args": ["ok", 3, 2.5, None, True],
        "max_tokens": 512,
    }


def test_mask_returns_a_copy_and_never_mutates_its_argument():
    value = {"a": [{"password": "x", "text": f"key {AWS}"}]}
    before = copy.deepcopy(value)
    masked = mask(value)
    assert value == before
    assert masked is not value and masked["a"] is not value["a"]


def test_masking_twice_changes_nothing_more():
    value = {"text": f"{JWT} password=x {ANTHROPIC}", "token": "t"}
    once = mask(value)
    assert mask(once) == once


def test_scalars_pass_through():
    assert mask(42) == 42
    assert mask(None) is None
    assert mask(f"k {STRIPE}") == "k [masked:stripe_key]"


def test_extra_patterns_add_custom_shapes_and_keep_the_defaults():
    patterns = compile_patterns([r"ACME-[0-9]{6}", r"(?i)pin (?P<secret>\d{4})"])
    text = f"ticket ACME-123456, PIN 9876, key {AWS}"
    assert mask_text(text, patterns) == (
        "ticket [masked:custom], PIN [masked:custom], key [masked:aws_access_key]"
    )
    assert mask({"note": "pin 1234"}, patterns) == {"note": "pin [masked:custom]"}
    # Without the extra patterns the same text keeps them.
    assert "ACME-123456" in mask_text(text)


def test_compile_patterns_is_cached_per_setting():
    assert compile_patterns(["abc+"]) is compile_patterns(("abc+",))
    assert compile_patterns() is compile_patterns([])


@pytest.mark.parametrize("bad", ["(unclosed", "x*", "a|"])
def test_compile_patterns_rejects_unusable_patterns(bad):
    with pytest.raises(ValueError):
        compile_patterns([bad])
