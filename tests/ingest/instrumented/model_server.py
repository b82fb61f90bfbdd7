"""A local OpenAI-compatible model server for the instrumentation tests: `/v1/chat/completions`
and `/v1/responses` answer the first turn with one `lookup_order` tool call and, once the tool's
result is in the conversation, with a final answer; both report usage. It decides from the
request alone, so any client and any number of runs can share it."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "gpt-test-mini"
QUESTION = "Where is order 7?"
ANSWER = "Order 7 has shipped."
TOOL = "lookup_order"
TOOL_ARGUMENTS = {"order_id": "7"}
TOOL_RESULT = {"order_id": "7", "status": "shipped"}
# (input, output) tokens of the first and the second model call
USAGE = ((50, 10), (80, 12))


def lookup_order(order_id: str) -> str:
    """Look up an order by its id."""
    return json.dumps({"order_id": order_id, "status": "shipped"})


def _chat(body: dict) -> dict:
    answered = any(m.get("role") == "tool" for m in body.get("messages", []))
    prompt, completion = USAGE[answered]
    if answered:
        message = {"role": "assistant", "content": ANSWER}
        finish = "stop"
    else:
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": TOOL, "arguments": json.dumps(TOOL_ARGUMENTS)},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-{int(answered)}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body.get("model") or MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _responses(body: dict) -> dict:
    items = body.get("input") if isinstance(body.get("input"), list) else []
    answered = any(
        isinstance(item, dict) and item.get("type") == "function_call_output" for item in items
    )
    prompt, completion = USAGE[answered]
    if answered:
        text = {"type": "output_text", "text": ANSWER, "annotations": []}
        output = [
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [text],
            }
        ]
    else:
        output = [
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": TOOL,
                "arguments": json.dumps(TOOL_ARGUMENTS),
                "status": "completed",
            }
        ]
    return {
        "id": f"resp_{int(answered)}",
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "completed",
        "model": body.get("model") or MODEL,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "usage": {
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": prompt + completion,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


class FakeModelServer:
    """Serves until `close()`; `base_url` ends in /v1 (what OpenAI clients take)."""

    def __init__(self):
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append({"path": self.path, "body": body})
                if self.path.endswith("/chat/completions"):
                    status, reply = 200, _chat(body)
                elif self.path.endswith("/responses"):
                    status, reply = 200, _responses(body)
                else:
                    status, reply = 404, {"error": {"message": f"no {self.path}"}}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
