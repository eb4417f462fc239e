"""A client for OpenAI-compatible chat endpoints (vLLM, SGLang, TGI, llama.cpp server, OpenAI, DeepSeek...).

Used by the generative judge (`r1cli.judge`) and by `r1 distill`'s remote teacher. Standard library only
(`urllib.request`), no new dependency.

    client = ChatClient("http://localhost:8000/v1", model="deepseek-ai/DeepSeek-R1", concurrency=16)
    out = client.chat_many([[{"role": "user", "content": "2+2?"}]], n=4, temperature=0.6, max_tokens=1024)
    out[0][j].text  # sample j of conversation 0

- **Endpoint.** `base_url` is the API root (`…/v1`); `/chat/completions` is appended unless the URL already
  ends with it. One POST per sample (`n` samples of a conversation are n requests, with `seed + j` when a seed is
  given): servers differ in whether they honour `n`, and a lost request then costs one sample, not n.
- **Concurrency.** `chat_many` runs up to `concurrency` requests at once in a thread pool; results keep the
  input order, and `on_done(i, results)` fires when all samples of conversation i are in (e.g. to append to a
  resumable log).
- **Retries.** Connection errors, timeouts, HTTP 408/409/429 and 5xx are retried up to `max_retries` times with
  exponential backoff (`backoff_s * 2**attempt`, capped at `max_backoff_s`, with jitter), honouring a
  `Retry-After` header. Other 4xx answers (bad request, auth) are not retried: they raise `RemoteError` at once,
  with the server's message.
- **Timeouts.** `timeout_s` bounds each request's connect and each socket read.
- **API key.** `api_key`, else the environment variable named by `api_key_env` (default `OPENAI_API_KEY`), sent
  as `Authorization: Bearer …`; no header when neither is set (local servers).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from r1cli.errors import StageError

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
Messages = list[dict[str, str]]


class RemoteError(StageError):
    """A request that failed for good (after retries, or a non-retryable answer)."""


@dataclass
class ChatResult:
    """One completion from the endpoint."""

    text: str = field(metadata={"help": "The assistant message content (reasoning_content prepended in <think>)."})
    finish_reason: str = field(default="stop", metadata={"help": "stop or length (as the server reports it)."})
    completion_tokens: int = field(default=0, metadata={"help": "usage.completion_tokens when reported, else 0."})


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    failures: int = 0
    seconds: float = 0.0


class ChatClient:
    """OpenAI-compatible `/chat/completions` client with a thread pool, retries and timeouts (see module doc)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        concurrency: int = 8,
        extra_body: dict[str, Any] | None = None,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        url = base_url.rstrip("/")
        self.url = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.concurrency = concurrency
        self.extra_body = dict(extra_body or {})
        self.stats = ClientStats()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ one request
    def chat(self, messages: Messages, **params: Any) -> ChatResult:
        """One completion of `messages`; `params` are request fields (temperature, top_p, max_tokens, seed...)."""
        body = {"model": self.model, "messages": messages, **self.extra_body,
                **{k: v for k, v in params.items() if v is not None}}
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            wait: float | None = None
            t0 = time.perf_counter()
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    payload = json.loads(resp.read().decode("utf-8"))
                self._count(requests=1, seconds=time.perf_counter() - t0)
                return _parse(payload)
            except urllib.error.HTTPError as e:
                msg = _error_text(e)
                self._count(requests=1, seconds=time.perf_counter() - t0)
                if e.code not in RETRY_STATUS:
                    self._count(failures=1)
                    raise RemoteError(f"{self.url} answered HTTP {e.code}: {msg}",
                                      hint=_hint(e.code)) from None
                last = f"HTTP {e.code}: {msg}"
                wait = _retry_after(e.headers.get("Retry-After") if e.headers else None)
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                self._count(requests=1, seconds=time.perf_counter() - t0)
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            except (json.JSONDecodeError, KeyError, IndexError, TypeError, UnicodeDecodeError) as e:
                self._count(requests=1, seconds=time.perf_counter() - t0)
                last = f"malformed response ({type(e).__name__}: {e})"
            if attempt == self.max_retries:
                break
            self._count(retries=1)
            delay = min(self.max_backoff_s, self.backoff_s * (2**attempt)) * (0.5 + random.random() / 2)
            time.sleep(max(delay, wait or 0.0))
        self._count(failures=1)
        raise RemoteError(f"{self.url}: request failed after {self.max_retries + 1} attempts ({last})",
                          hint="check that the server is up and the model name is right; raise max_retries or "
                          "timeout_s for a busy server")

    def _count(self, **kw: float) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self.stats, k, getattr(self.stats, k) + v)

    # ------------------------------------------------------------------------------------------ many
    def chat_many(
        self,
        conversations: Sequence[Messages],
        *,
        n: int = 1,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        on_done: Callable[[int, list[ChatResult]], None] | None = None,
    ) -> list[list[ChatResult]]:
        """`n` completions per conversation, `concurrency` requests in flight; `out[i][j]` in input order.
        A request that fails for good raises `RemoteError` (pending requests are cancelled)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        out: list[list[ChatResult | None]] = [[None] * n for _ in conversations]
        left = [n] * len(conversations)
        done_lock = threading.Lock()

        def one(i: int, j: int) -> None:
            res = self.chat(list(conversations[i]), temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                            seed=None if seed is None else seed + j, stop=list(stop) if stop else None)
            with done_lock:
                out[i][j] = res
                left[i] -= 1
                finished = left[i] == 0
            if finished and on_done is not None:
                on_done(i, list(out[i]))  # type: ignore[arg-type]

        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="r1-remote") as ex:
            futures = [ex.submit(one, i, j) for i in range(len(conversations)) for j in range(n)]
            try:
                for f in futures:
                    f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        return out  # type: ignore[return-value]


def _parse(payload: dict[str, Any]) -> ChatResult:
    choice = payload["choices"][0]
    msg = choice.get("message") or {}
    text = msg.get("content") or ""
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if reasoning and "</think>" not in text:  # DeepSeek / vLLM reasoning parsers split the CoT out
        text = f"<think>\n{reasoning}\n</think>\n{text}"
    usage = payload.get("usage") or {}
    return ChatResult(text=text, finish_reason=choice.get("finish_reason") or "stop",
                      completion_tokens=int(usage.get("completion_tokens") or 0))


def _error_text(e: urllib.error.HTTPError) -> str:
    try:
        raw = e.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001
        return str(e.reason)
    try:
        err = json.loads(raw).get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err)[:300]
        if err:
            return str(err)[:300]
    except (json.JSONDecodeError, AttributeError):
        pass
    return raw.strip()[:300] or str(e.reason)


def _retry_after(v: str | None) -> float | None:
    try:
        return min(float(v), 300.0) if v else None
    except ValueError:
        return None


def _hint(code: int) -> str:
    if code in (401, 403):
        return "set the API key (api_key, or the environment variable named by api_key_env)"
    if code == 404:
        return "check base_url (the API root, e.g. http://host:8000/v1) and the model name"
    return "check the request parameters the server rejected"


__all__ = ["ChatClient", "ChatResult", "RemoteError"]
