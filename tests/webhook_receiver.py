"""A local HTTP server standing in for a webhook endpoint: it keeps each POST (raw body and
headers), answers with the next status of `statuses` (200 when there is none), and can hold its
answers until released, as a slow endpoint does."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secret: str, headers, body: bytes) -> bool:
    """The receiver's check, as the README shows it."""
    timestamp = headers["X-Agentops-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + expected.hexdigest(), headers["X-Agentops-Signature"])


class WebhookReceiver:
    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests = []  # {"headers", "body" (bytes), "json"}
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.release.set()  # clear() to hold answers: a slow endpoint
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(
                    {"headers": self.headers, "body": body, "json": json.loads(body)}
                )
                receiver.arrived.set()
                receiver.release.wait(30)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
