"""The teacher of `r1 distill`: a model that writes reasoning traces, local or behind an endpoint.

`open_teacher(cfg)` returns one of two objects with the same small interface:

- `render(question, builtin_task) -> str`: what the teacher is conditioned on (the exact prompt text for a local
  model; the user message for an endpoint, whose server applies its own chat template). It is part of the trace
  log's protocol key, so a resumed run refuses traces made from other prompts.
- `generate(rendered, n, on_prompt_done)`: n traces per prompt; `on_prompt_done(i, [Trace])` as each prompt's n
  traces finish (the caller logs them, fsync'd, for `--resume`).
- `close()`: free the model before the student is loaded.

`LocalTeacher` loads a preset, r1cli run, HF folder or hub id with `r1cli.models.load_model` and samples with
`r1cli.generation.generate` (backend `hf`, or `vllm` when installed and a GPU is visible: without them the engine
raises a one-line StageError). A chat template that prefills `<think>` leaves the opening tag in the prompt; it
is put back in front of each trace (as `r1 eval` does before grading), so a trace is always a whole completion.

`EndpointTeacher` talks to an OpenAI-compatible server (`r1cli.remote`, concurrency and retries there) through
chat/completions. A server that returns the reasoning separately (`reasoning_content`, as DeepSeek's API and
vLLM's reasoning parsers do) gets it wrapped back into `<think>…</think>` before the answer text (by
`r1cli.remote`). Without `teacher_model_name`, the model is the first one the server lists at `/models`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from r1cli.console import log
from r1cli.prompts import R1_ZERO_TEMPLATE, build_prompt


@dataclass
class Trace:
    """One teacher completion."""

    text: str  # the whole completion (a prefilled `<think>` put back)
    n_tokens: int  # tokens generated (0 when an endpoint does not say)
    finish_reason: str  # stop | length


OnDone = Callable[[int, list[Trace]], None]


def is_endpoint(spec: str | None) -> bool:
    """Whether a teacher spec is an endpoint URL rather than a model."""
    return bool(spec) and str(spec).startswith(("http://", "https://"))


def user_message(question: str, builtin_task: bool, template: str, instruction: str | None) -> str:
    """The user turn sent to an endpoint (its server applies the chat template)."""
    if template == "r1-zero":
        return R1_ZERO_TEMPLATE.replace("{prompt}", question)
    if template == "auto" and builtin_task:
        instruction = None
    return build_prompt(question, "plain", instruction=instruction)


class LocalTeacher:
    """A checkpoint sampled by r1cli's generation engine (or vLLM)."""

    def __init__(self, cfg: Any):
        from r1cli.models import load_model, load_tokenizer, resolve_model

        self.cfg = cfg
        self.spec = cfg.teacher
        args = SimpleNamespace(model=cfg.teacher, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code,
                               revision=None)
        if cfg.teacher_backend == "vllm":
            self.model, self.tok = resolve_model(cfg.teacher), load_tokenizer(args)
        else:
            self.model, self.tok = load_model(args)

    def render(self, question: str, builtin_task: bool) -> str:
        from r1cli.prompts import render_prompt

        return render_prompt(question, builtin_task=builtin_task, tokenizer=self.tok, template=self.cfg.template,
                             instruction=self.cfg.instruction)

    def generate(self, rendered: Sequence[str], n: int, on_prompt_done: OnDone) -> None:
        from r1cli.generation import generate
        from r1cli.prompts import as_written, prefilled_think

        if not rendered:
            return
        prefixes = [prefilled_think(p) for p in rendered]

        def done(i: int, samples: list) -> None:
            on_prompt_done(i, [Trace(as_written(prefixes[i], s.text), s.n_tokens, s.finish_reason) for s in samples])

        c = self.cfg
        generate(self.model, self.tok, list(rendered), n=n, temperature=c.temperature, top_p=c.top_p,
                 max_new_tokens=c.max_new_tokens, seed=c.seed, batch_size=c.teacher_batch_size,
                 backend=c.teacher_backend, on_prompt_done=done, vllm_options=c.vllm_options())

    def close(self) -> None:
        import gc

        self.model = None
        gc.collect()


class EndpointTeacher:
    """An OpenAI-compatible chat/completions endpoint (`r1cli.remote.ChatClient`)."""

    def __init__(self, cfg: Any):
        from r1cli.remote import ChatClient

        self.cfg = cfg
        self.spec = cfg.teacher
        model = cfg.teacher_model_name or served_model(cfg.teacher, cfg.teacher_api_key_env, cfg.teacher_timeout_s)
        self.client = ChatClient(cfg.teacher, model, api_key_env=cfg.teacher_api_key_env,
                                 timeout_s=cfg.teacher_timeout_s, max_retries=cfg.teacher_max_retries,
                                 concurrency=cfg.teacher_concurrency)
        log(f"teacher: endpoint {cfg.teacher}, model {model}")

    def render(self, question: str, builtin_task: bool) -> str:
        c = self.cfg
        return user_message(question, builtin_task, c.template, c.instruction)

    def generate(self, rendered: Sequence[str], n: int, on_prompt_done: OnDone) -> None:
        c = self.cfg

        def done(i: int, results: list) -> None:
            on_prompt_done(i, [Trace(r.text, r.completion_tokens, "length" if r.finish_reason == "length" else "stop")
                               for r in results])

        self.client.chat_many([[{"role": "user", "content": m}] for m in rendered], n=n, temperature=c.temperature,
                              top_p=c.top_p, max_tokens=c.max_new_tokens, seed=c.seed, on_done=done)
        st = self.client.stats
        log(f"teacher endpoint: {st.requests} requests, {st.retries} retries, {st.failures} failures")

    def close(self) -> None:
        pass


def served_model(base_url: str, api_key_env: str, timeout_s: float) -> str:
    """The first model an endpoint lists at `GET {base_url}/models` (what vLLM serves); ConfigError if none."""
    import json
    import os
    import urllib.request

    from r1cli.errors import ConfigError

    url = base_url.rstrip("/").removesuffix("/chat/completions") + "/models"
    headers = {"Accept": "application/json"}
    key = os.environ.get(api_key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s) as resp:
            data = json.loads(resp.read().decode("utf-8")).get("data") or []
        return str(data[0]["id"])
    except Exception as e:  # noqa: BLE001 - any failure means: name the model yourself
        raise ConfigError(f"teacher endpoint {base_url}: cannot list its models ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:150] if str(e) else ''})",
                          hint="set teacher_model_name to the model the server serves") from None


def open_teacher(cfg: Any) -> LocalTeacher | EndpointTeacher:
    """The teacher named by `cfg.teacher`."""
    return EndpointTeacher(cfg) if is_endpoint(cfg.teacher) else LocalTeacher(cfg)
