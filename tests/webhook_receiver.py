"""A local HTTP server standing in for a webhook endpoint: it keeps each POST (raw body and
headers), answers with the next status of `statuses` (200 when there is none), and can hold its
answers until released, as a slow endpoint does."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_verify():
    """The receiver's check exactly as the README shows it."""
    text = README.read_text()
    section = text[text.index("### Webhooks: tell someone") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["verify"]


verify = _readme_verify()


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

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a sender that timed out and left: what a slow endpoint sees

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
