"""A local HTTP server answering JSON POSTs from a queue of replies: the model endpoints the
provider tests talk to, speaking each API's real wire format."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeJsonServer:
    """Answers each POST with the next (status, headers, body) of `replies` (500 when there is
    none) and keeps each request as {"path", "headers", "body"}; its headers are looked up
    without regard to case. `base_url` ends in `base_path`."""

    def __init__(self, base_path: str = ""):
        self.replies = []
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                fake.requests.append(
                    {
                        "path": self.path,
                        "headers": self.headers,
                        "body": json.loads(self.rfile.read(length)),
                    }
                )
                status, headers, body = fake.replies.pop(0) if fake.replies else (500, {}, {})
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}{base_path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
