"""The plain part of webhooks (runs.engine.webhooks): what a valid endpoint is, at its limits;
the signature a receiver recomputes; backoff; the Slack text, with what an agent wrote escaped."""

import hashlib
import hmac

import pytest

from runs.engine.webhooks import (
    EVENTS,
    MAX_SECRET_CHARS,
    MAX_URL_CHARS,
    MIN_SECRET_CHARS,
    WebhookInvalid,
    body_bytes,
    clean_endpoint,
    retry_delay,
    run_text,
    signature,
    signed_headers,
)

GOOD = {"url": "https://hooks.example.com/x", "secret": "s" * 16, "events": ["run.failed"]}


def test_secret_and_url_lengths_are_exact():
    for secret in ("s" * MIN_SECRET_CHARS, "s" * MAX_SECRET_CHARS):
        assert clean_endpoint(**{**GOOD, "secret": secret})[1] == secret
    for secret in ("s" * (MIN_SECRET_CHARS - 1), "s" * (MAX_SECRET_CHARS + 1)):
        with pytest.raises(WebhookInvalid) as exc:
            clean_endpoint(**{**GOOD, "secret": secret})
        assert set(exc.value.errors) == {"secret"}
    base = "https://h.example.com/"
    longest = base + "x" * (MAX_URL_CHARS - len(base))
    assert clean_endpoint(**{**GOOD, "url": longest})[0] == longest
    with pytest.raises(WebhookInvalid):
        clean_endpoint(**{**GOOD, "url": longest + "x"})


def test_events_are_kept_in_their_table_order_without_repeats():
    _, _, events, generated = clean_endpoint(
        **{**GOOD, "events": ["spend_window.80", "run.failed", "run.failed"]}
    )
    assert events == ["run.failed", "spend_window.80"] and not generated
    assert set(EVENTS) >= {"run.awaiting_approval", "spend_window.exhausted", "run.lost"}


@pytest.mark.parametrize("secret", [None, "", "   "])
def test_a_secret_left_out_is_generated(secret):
    _, made, _, generated = clean_endpoint(**{**GOOD, "secret": secret})
    assert generated and len(made) >= 32
    assert made != clean_endpoint(**{**GOOD, "secret": secret})[1]


@pytest.mark.parametrize("url", ["HTTP://EXAMPLE.COM/x", "http://127.0.0.1:8080/hook?a=1"])
def test_http_and_https_urls_are_taken(url):
    assert clean_endpoint(**{**GOOD, "url": f"  {url} "})[0] == url


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = body_bytes({"b": 1, "a": "é"})
    assert body == b'{"a":"\\u00e9","b":1}'
    expected = hmac.new(b"k" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("k" * 16, 1700000000, body) == f"sha256={expected}"
    headers = signed_headers(secret="k" * 16, timestamp=1700000000, body=body, event="run.lost",
                             delivery="d-1")  # fmt: skip
    assert headers["X-Agentops-Signature"] == f"sha256={expected}"
    assert headers["X-Agentops-Timestamp"] == "1700000000"
    assert signature("k" * 16, 1700000001, body) != headers["X-Agentops-Signature"]


def test_backoff_doubles_up_to_its_most():
    delays = [retry_delay(n, base=10, most=3600) for n in range(1, 11)]
    assert delays[:4] == [10, 20, 40, 80] and delays[-1] == 3600
    assert retry_delay(10_000, base=10, most=3600) == 3600


def test_the_text_escapes_what_an_agent_wrote_and_links_the_run():
    run = {
        "id": "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000",
        "agent": "bot <!channel>",
        "status": "failed",
        "error": {"code": "agent_error", "message": "x <https://evil|click> & " + "y" * 400},
        "cost_usd": "0.01",
        "url": "https://ops.example.com/runs/0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000/",
    }
    text = run_text(event="run.failed", run=run)
    assert text.startswith(f"Run <{run['url']}|0190aaaa> of agent bot &lt;!channel&gt; ended")
    assert "&lt;https://evil|click&gt; &amp;" in text and "<!channel>" not in text
    assert len(text) < 600 and "Cost $0.01." in text
