"""A real OpenAI-compatible endpoint for tests: `http.server` in a thread, no mock of the client.

POST `<url>/chat/completions` answers with `reply(body)` (the assistant message as a dict, or its text); GET
`<url>/models` lists `model`. Every request body is recorded in `bodies`, in arrival order.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ChatServer:
    def __init__(self, reply: Callable[[dict[str, Any]], dict[str, Any] | str], model: str = "test-model"):
        self.bodies: list[dict[str, Any]] = []
        srv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._send({"object": "list", "data": [{"id": model, "object": "model"}]})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                srv.bodies.append(body)
                msg = reply(body)
                if isinstance(msg, str):
                    msg = {"role": "assistant", "content": msg}
                self._send({"choices": [{"index": 0, "finish_reason": "stop", "message": msg}],
                            "usage": {"completion_tokens": 12}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def prompts(self) -> list[str]:
        """The last message of every request."""
        return [b["messages"][-1]["content"] for b in self.bodies]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
