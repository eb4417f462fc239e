"""The OpenAI-compatible client against a real local HTTP server (http.server in a thread, no mocks)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from r1cli.remote import ChatClient, RemoteError


class Server:
    """A tiny chat/completions endpoint whose behaviour per request is chosen by the last user message."""

    def __init__(self):
        self.calls: dict[str, int] = {}
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.inflight = 0
        self.max_inflight = 0
        self.lock = threading.Lock()
        srv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                msg = body["messages"][-1]["content"]
                with srv.lock:
                    srv.bodies.append(body)
                    srv.headers.append(dict(self.headers))
                    srv.calls[msg] = srv.calls.get(msg, 0) + 1
                    k = srv.calls[msg]
                    srv.inflight += 1
                    srv.max_inflight = max(srv.max_inflight, srv.inflight)
                try:
                    if self.path != "/v1/chat/completions":
                        return self._send(404, {"error": {"message": "no such route"}})
                    if msg.startswith("flaky") and k <= 2:
                        return self._send(503 if k == 1 else 429, {"error": {"message": "busy"}},
                                          {"Retry-After": "0"})
                    if msg == "bad":
                        return self._send(400, {"error": {"message": "max_tokens too large"}})
                    if msg == "slow" and k == 1:
                        time.sleep(1.0)
                    if msg.startswith("sleep"):
                        time.sleep(0.2)
                    if msg == "garbage" and k == 1:
                        return self._send(200, None, raw=b"not json")
                    reply = {"choices": [{"message": {"role": "assistant",
                                                      "content": f"echo {msg} seed={body.get('seed')}"},
                                          "finish_reason": "stop"}],
                             "usage": {"completion_tokens": 3}}
                    if msg == "reasoner":
                        reply["choices"][0]["message"] = {"content": "\\boxed{4}", "reasoning_content": "2+2=4"}
                    self._send(200, reply)
                finally:
                    with srv.lock:
                        srv.inflight -= 1

            def _send(self, code, obj, headers=None, raw=None):
                data = raw if raw is not None else json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def client(server, **kw):
    kw.setdefault("backoff_s", 0.01)
    return ChatClient(server.url, model="m", **kw)


def test_chat_sends_model_params_and_key(server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    r = client(server, api_key_env="MY_KEY").chat([{"role": "user", "content": "hi"}], temperature=0.6,
                                                   max_tokens=5, seed=None)
    assert r.text == "echo hi seed=None" and r.finish_reason == "stop" and r.completion_tokens == 3
    assert server.bodies[0]["model"] == "m" and server.bodies[0]["temperature"] == 0.6
    assert "seed" not in server.bodies[0]  # None params are not sent
    assert server.headers[0]["Authorization"] == "Bearer sk-test"


def test_reasoning_content_is_put_back_in_think(server):
    r = client(server).chat([{"role": "user", "content": "reasoner"}])
    assert r.text == "<think>\n2+2=4\n</think>\n\\boxed{4}"


def test_retries_5xx_429_and_malformed(server):
    c = client(server)
    assert c.chat([{"role": "user", "content": "flaky"}]).text.startswith("echo flaky")
    assert server.calls["flaky"] == 3 and c.stats.retries == 2
    assert c.chat([{"role": "user", "content": "garbage"}]).text.startswith("echo garbage")


def test_gives_up_after_max_retries(server):
    c = client(server, max_retries=1)
    with pytest.raises(RemoteError, match="after 2 attempts"):
        c.chat([{"role": "user", "content": "flaky2"}])
    assert server.calls["flaky2"] == 2


def test_non_retryable_error_raises_at_once(server):
    c = client(server)
    with pytest.raises(RemoteError, match="HTTP 400: max_tokens too large"):
        c.chat([{"role": "user", "content": "bad"}])
    assert server.calls["bad"] == 1
    with pytest.raises(RemoteError, match="HTTP 404"):
        ChatClient(server.url + "/wrong", model="m").chat([{"role": "user", "content": "x"}])


def test_timeout_is_retried(server):
    c = client(server, timeout_s=0.3)
    t0 = time.perf_counter()
    assert c.chat([{"role": "user", "content": "slow"}]).text.startswith("echo slow")
    assert server.calls["slow"] == 2 and time.perf_counter() - t0 < 1.0


def test_connection_refused_fails_cleanly():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = ChatClient(f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff_s=0.01)
    with pytest.raises(RemoteError, match="failed after 2 attempts"):
        c.chat([{"role": "user", "content": "x"}])


def test_chat_many_concurrent_ordered_with_callbacks(server):
    c = client(server, concurrency=4)
    convs = [[{"role": "user", "content": f"sleep{i}"}] for i in range(4)]
    done = []
    t0 = time.perf_counter()
    out = c.chat_many(convs, n=2, seed=10, on_done=lambda i, rs: done.append((i, len(rs))))
    wall = time.perf_counter() - t0
    assert [[r.text for r in rs] for rs in out] == [[f"echo sleep{i} seed=10", f"echo sleep{i} seed=11"]
                                                    for i in range(4)]
    assert sorted(done) == [(i, 2) for i in range(4)]
    assert server.max_inflight >= 2
    assert wall < 8 * 0.2  # 8 requests of 0.2 s did not run one after another


def test_bad_arguments():
    with pytest.raises(ValueError, match="http"):
        ChatClient("localhost:8000", model="m")
    with pytest.raises(ValueError, match="concurrency"):
        ChatClient("http://x/v1", model="m", concurrency=0)
