"""The sampling engine: exactness against HF greedy decoding, per-sample seeding, stops, the sampled tokens'
log-probs (what RL rollouts hand the GRPO trainer), and the top-k / top-p / min-p sampler against transformers'
logits warpers."""

from __future__ import annotations

import pytest

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def random_tiny(seed: int = 0):
    """A random 2-layer Qwen2 with a small byte-level BPE tokenizer (built in well under a second)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    corpus = [f"<think>\n{a}+{b}={a + b}\n</think>\n<answer>\n{a + b}\n</answer>" for a in range(20) for b in range(20)]
    tr = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(corpus, tr)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = CHATML
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True,
                      initializer_range=0.3)  # large weights: varied, non-degenerate outputs
    return Qwen2ForCausalLM(cfg).eval(), tok


@pytest.fixture(scope="module")
def tiny():
    return random_tiny()


def prompts_of(tok, n):
    qs = [f"What is {i} + {3 * i}?" + " Think." * (i % 4) for i in range(n)]
    return [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
            for q in qs]


def test_greedy_matches_hf_generate_with_left_padding_and_refills(tiny):
    import torch

    from r1cli.generation import generate

    model, tok = tiny
    prompts = prompts_of(tok, 6) + ["hi"]  # different lengths -> left padding; 7 rows in batches of 3 -> refills
    got = generate(model, tok, prompts, temperature=0, max_new_tokens=12, batch_size=3, progress=False)
    for p, samples in zip(prompts, got, strict=True):
        enc = tok(p, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            ref = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
        ref_ids = ref[0, enc.input_ids.shape[1]:].tolist()
        assert samples[0].token_ids == ref_ids[: len(samples[0].token_ids)]
        assert len(samples) == 1


def test_greedy_exact_when_rows_finish_at_different_steps(tiny):
    """Rows that stop early are dropped and queued rows merged into a running batch (different cache lengths):
    every completion still equals HF greedy decoding of its prompt alone."""
    from collections import Counter

    import torch

    import r1cli.generation as gen
    from r1cli.generation import generate

    model, tok = tiny
    prompts = prompts_of(tok, 8) + ["hi", "Tell me"]
    free = generate(model, tok, prompts, temperature=0, max_new_tokens=14, progress=False)
    common = [t for t, _ in Counter(t for r in free for t in r[0].token_ids[1:]).most_common(3)]
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, *common]
    try:
        got = generate(model, tok, prompts, temperature=0, max_new_tokens=14, batch_size=4, progress=False)
        stats = gen.LAST_STATS
        lengths = {r[0].n_tokens for r in got}
        for p, samples in zip(prompts, got, strict=True):
            enc = tok(p, return_tensors="pt", add_special_tokens=False)
            with torch.no_grad():
                ref = model.generate(**enc, max_new_tokens=14, do_sample=False, pad_token_id=tok.pad_token_id)
            ref_ids = ref[0, enc.input_ids.shape[1]:].tolist()
            ref_ids = ref_ids[: next((i + 1 for i, t in enumerate(ref_ids) if t in [tok.eos_token_id, *common]),
                                     len(ref_ids))]
            assert samples[0].token_ids == ref_ids
    finally:
        model.generation_config.eos_token_id = old
    print(sorted(lengths), stats)
    assert len(lengths) >= 3  # rows did finish at different steps
    assert stats.prefills >= 3  # queued rows joined a running batch


def test_samples_depend_on_seed_and_prompt_not_on_batching(tiny):
    from r1cli.generation import generate

    model, tok = tiny
    prompts = prompts_of(tok, 5)
    kw = dict(n=3, temperature=1.0, top_p=0.9, max_new_tokens=10, progress=False)
    a = generate(model, tok, prompts, seed=1, batch_size=64, **kw)
    b = generate(model, tok, prompts, seed=1, batch_size=4, **kw)
    c = generate(model, tok, prompts[2:], seed=1, batch_size=7, **kw)  # other prompts, other order of finishing
    d = generate(model, tok, prompts, seed=2, batch_size=64, **kw)
    # no prefill sharing, one prompt per prefill chunk: same samples
    e = generate(model, tok, prompts, seed=1, batch_size=9, share_prefill=False, prefill_tokens=1, **kw)
    texts = lambda r: [[s.text for s in row] for row in r]  # noqa: E731
    assert texts(a) == texts(b) == texts(e)
    assert texts(a)[2:] == texts(c)
    assert texts(a) != texts(d)
    # the k samples of one prompt differ from each other
    assert all(len({s.text for s in row}) > 1 for row in a)


def test_default_batch_size_is_fixed_by_model_and_request_not_free_memory(tiny, monkeypatch):
    """Issue 17: `batch_size=None` must not follow the free memory (it changes with the page cache and the other
    processes): the default is a function of the model and the request; free memory only caps it when short, with
    a warning and a record in the manifest's runtime."""
    import r1cli.generation as g
    from r1cli.runs.folder import runtime_facts

    model, tok = tiny
    monkeypatch.setattr(g, "MEMORY_CAPS", [])
    per_row = g.kv_bytes_per_row(model, 100)
    rows = {}
    for free in (1 << 40, 8 << 30, 2 * g.MAX_ROWS["cpu"] * per_row):
        monkeypatch.setattr(g, "_available_ram", lambda free=free: free)
        rows[free] = g.default_batch_size(model, 100)
    assert set(rows.values()) == {g.MAX_ROWS["cpu"]} and g.MEMORY_CAPS == []
    assert "generation_memory_caps" not in runtime_facts()
    monkeypatch.setattr(g, "_available_ram", lambda: 2 * 300 * per_row)  # room for 300 rows only
    assert g.default_batch_size(model, 100) == 300 == g.default_batch_size(model, 100)
    assert [{"rows": g.MAX_ROWS["cpu"], "used": 300, "free_bytes": 600 * per_row, "calls": 2}] == g.MEMORY_CAPS
    assert runtime_facts()["generation_memory_caps"] == g.MEMORY_CAPS
    # a model whose rows do not all fit the fixed budget (a bigger one, longer requests): fewer rows, still the same
    # whatever the free memory
    monkeypatch.setattr(g, "CPU_KV_BUDGET", 100 * per_row)
    for free in (1 << 40, 8 << 30):
        monkeypatch.setattr(g, "_available_ram", lambda free=free: free)
        assert g.default_batch_size(model, 100) == 100


def test_repeated_prompt_gets_fresh_samples(tiny):
    from r1cli.generation import generate

    model, tok = tiny
    p = prompts_of(tok, 1)[0]
    out = generate(model, tok, [p, p], n=1, temperature=1.0, top_p=1.0, max_new_tokens=10, progress=False)
    assert out[0][0].text != out[1][0].text


def test_length_eos_and_stop_strings(tiny):
    from r1cli.generation import generate

    model, tok = tiny
    prompts = prompts_of(tok, 3)
    ref = generate(model, tok, prompts, temperature=0, max_new_tokens=8, progress=False)
    for row in ref:
        assert row[0].finish_reason == "length" and row[0].n_tokens == 8 and len(row[0].token_ids) == 8
    # make the 3rd generated token of prompt 0 an EOS: the row stops there, EOS counted but not in the text
    stop_id = ref[0][0].token_ids[2]
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, stop_id]
    try:
        got = generate(model, tok, prompts[:1], temperature=0, max_new_tokens=8, progress=False)[0][0]
    finally:
        model.generation_config.eos_token_id = old
    first = ref[0][0].token_ids.index(stop_id)
    assert got.finish_reason == "stop" and got.n_tokens == first + 1
    assert got.text == tok.decode(ref[0][0].token_ids[:first], skip_special_tokens=True)
    # a stop string cuts the text before it
    full = tok.decode(ref[1][0].token_ids, skip_special_tokens=True)
    stop = full[3:5]
    got = generate(model, tok, prompts[1:2], temperature=0, max_new_tokens=8, stop=[stop], progress=False)[0][0]
    assert got.finish_reason == "stop"
    assert got.text == full[: full.find(stop)]
    assert got.n_tokens < 8 or full.find(stop) + len(stop) > len(tok.decode(ref[1][0].token_ids[:7]))


def test_on_prompt_done_called_once_per_prompt(tiny):
    from r1cli.generation import generate

    model, tok = tiny
    seen = []
    out = generate(model, tok, prompts_of(tok, 4), n=2, temperature=1.0, max_new_tokens=5, batch_size=3,
                   progress=False, on_prompt_done=lambda i, s: seen.append((i, len(s))))
    assert sorted(seen) == [(i, 2) for i in range(4)]
    assert all(len(r) == 2 for r in out)


def test_logprobs_are_the_models_and_repeated_prompts_share_a_prefill(tiny):
    """RL's call: prompts as ids, each repeated G times with n=1. Each row's log-probs are log_softmax(logits / T)
    of a plain full forward at its sampled tokens; rows stop at their EOS (kept as the last token) at different
    steps; the repeats get different samples, and the same ones as without prefill sharing."""
    from collections import Counter

    import torch

    import r1cli.generation as gen
    from r1cli.generation import generate

    model, tok = tiny
    prompts = [tok(p, add_special_tokens=False).input_ids for p in prompts_of(tok, 3)]
    rows = [p for p in prompts for _ in range(4)]
    free = generate(model, tok, rows, temperature=1.0, top_p=1.0, max_new_tokens=10, progress=False)
    eos = [t for t, _ in Counter(t for r in free for t in r[0].token_ids).most_common(2)]
    kw = dict(n=1, temperature=0.7, top_p=0.9, top_k=40, min_p=0.01, max_new_tokens=10, seed=3, progress=False,
              logprobs=True, eos_ids=eos)
    got = generate(model, tok, rows, **kw)
    assert gen.LAST_STATS.prefills == 1
    comps = [r[0].token_ids for r in got]
    assert min(map(len, comps)) < 10 and len(set(map(len, comps))) > 2  # rows finish at different steps
    for c in comps:
        assert not set(c[:-1]) & set(eos) and (len(c) == 10 or c[-1] in eos)  # EOS only as the last token
    assert all(len({tuple(c) for c in comps[i : i + 4]}) > 1 for i in range(0, 12, 4))  # repeats differ
    for p, r in zip(rows, got, strict=True):
        c, lp = r[0].token_ids, r[0].logprobs
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([p + c])).logits[0, len(p) - 1 : -1].float()
        want = torch.log_softmax(logits / 0.7, -1).gather(-1, torch.tensor(c)[:, None]).squeeze(-1)
        assert len(lp) == len(c) and torch.allclose(torch.tensor(lp), want, atol=1e-4)
    alone = generate(model, tok, rows, share_prefill=False, **kw)
    assert [r[0].token_ids for r in alone] == comps
    assert all(r[0].logprobs is None for r in generate(model, tok, rows[:2], max_new_tokens=3, progress=False))
    greedy = generate(model, tok, rows[:1], temperature=0, max_new_tokens=3, logprobs=True, progress=False)
    assert greedy[0][0].logprobs == [0.0, 0.0, 0.0]  # greedy: a point mass


def random_llama(seed: int = 0):
    """A random 2-layer Llama (SmolLM2's architecture: no attention bias, 3 query heads per KV head) on tiny's
    tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    _, tok = random_tiny()
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=96, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=512, rope_theta=1e5,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, initializer_range=0.3)
    return LlamaForCausalLM(cfg).eval(), tok


def _lora(model):
    """`model` behind a PEFT LoRA adapter whose update is not zero (B initialised randomly)."""
    import torch
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    torch.manual_seed(1)
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.2)
    return peft.eval()


@pytest.mark.parametrize("arch", ["qwen2", "llama", "qwen2+lora"])
def test_lean_decode_equals_the_models_forward(arch):
    """The lean decoding step is the model's own forward, op for op: the same tokens and log-probs with and
    without it (sampled, batch refills and compactions included), also behind a PEFT adapter; other
    architectures fall back to the model's forward."""
    from r1cli.generation import _LeanDecode, generate

    model, tok = random_llama() if arch == "llama" else random_tiny()
    if arch.endswith("+lora"):
        model = _lora(model)
    assert _LeanDecode.of(model) is not None
    from collections import Counter

    prompts = prompts_of(tok, 6) + ["hi"]
    kw = dict(n=3, temperature=1.0, top_p=0.95, max_new_tokens=16, batch_size=8, seed=5, logprobs=True,
              progress=False)
    free = generate(model, tok, prompts, **kw)
    # frequent tokens as EOS: rows finish at different steps, so the batch is compacted and refilled
    kw["eos_ids"] = [t for t, _ in Counter(t for r in free for s in r for t in s.token_ids).most_common(2)]
    lean = generate(model, tok, prompts, **kw)
    own = generate(model, tok, prompts, lean_decode=False, **kw)
    assert [[s.token_ids for s in r] for r in lean] == [[s.token_ids for s in r] for r in own]
    assert [[s.logprobs for s in r] for r in lean] == [[s.logprobs for s in r] for r in own]
    assert len({s.n_tokens for r in lean for s in r}) > 1


def test_lean_decode_declines_other_models():
    from transformers import GPT2Config, GPT2LMHeadModel

    from r1cli.generation import _LeanDecode

    model, _ = random_tiny()
    model.config._attn_implementation = "eager"
    assert _LeanDecode.of(model) is None
    assert _LeanDecode.of(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))) is None


def _reference_top_p(probs, u, top_p):
    """The textbook sampler: full sort, nucleus, inverse CDF."""
    import torch

    vals, order = probs.sort(dim=-1, descending=True)
    before = vals.cumsum(-1) - vals
    vals = vals.masked_fill(before >= top_p, 0.0)
    cdf = vals.cumsum(-1)
    r = (u.double() * cdf[:, -1].double()).float().unsqueeze(1)
    idx = torch.searchsorted(cdf, r, right=True)
    idx = torch.minimum(idx, (vals > 0).sum(-1, keepdim=True) - 1)
    return order.gather(1, idx).squeeze(1)


def test_sampler_matches_full_sort_reference_including_fallback_rows():
    import torch

    from r1cli.generation import sample_tokens

    g = torch.Generator().manual_seed(0)
    V = 200
    peaked = torch.randn(64, V, generator=g) * 6  # top-32 holds > top_p: fast path
    flat = torch.randn(64, V, generator=g) * 0.1  # top-32 holds < top_p: full-sort fallback
    logits = torch.cat([peaked, flat])
    u = torch.rand(128, generator=g, dtype=torch.float64)
    for t, p in [(1.0, 0.95), (0.6, 0.95), (1.0, 0.5)]:
        got = sample_tokens(logits, u, t, p)
        want = _reference_top_p(torch.softmax(logits / t, -1), u, p)
        assert torch.equal(got, want)


def test_sampler_distribution_and_nucleus():
    import torch

    from r1cli.generation import row_uniforms, sample_tokens

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(40000, 4)
    u = row_uniforms(torch.arange(40000) * 7919 % (1 << 32), torch.zeros(40000, dtype=torch.long))
    assert float(u.min()) >= 0 and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.01
    tok = sample_tokens(logits, u, 1.0, 1.0)
    freq = torch.bincount(tok, minlength=4).float() / 40000
    assert torch.allclose(freq, probs, atol=0.01)
    # top-p 0.8 keeps {0.5, 0.3} (mass before the third token is 0.8): renormalised 0.625 / 0.375
    tok = sample_tokens(logits, u, 1.0, 0.8)
    freq = torch.bincount(tok, minlength=4).float() / 40000
    assert freq[2] == 0 and freq[3] == 0
    assert abs(float(freq[0]) - 0.625) < 0.01
    # greedy
    assert torch.equal(sample_tokens(logits[:3], None, 0.0, 0.9), torch.zeros(3, dtype=torch.long))


def _reference_warpers(logits, u, t, top_k, top_p, min_p):
    """transformers' warpers (top-k, top-p, min-p, in generate's order), then the inverse CDF of the kept
    distribution sorted by probability."""
    import torch
    from transformers.generation.logits_process import MinPLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    scores = logits / t
    if top_k:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p < 1:
        scores = TopPLogitsWarper(top_p)(None, scores)
    if min_p:
        scores = MinPLogitsWarper(min_p)(None, scores)
    vals, order = torch.softmax(scores, -1).sort(dim=-1, descending=True)
    cdf = vals.cumsum(-1)
    idx = torch.searchsorted(cdf, (u.double() * cdf[:, -1].double()).float().unsqueeze(1), right=True)
    idx = torch.minimum(idx, (vals > 0).sum(-1, keepdim=True) - 1)
    return order.gather(1, idx).squeeze(1)


@pytest.mark.parametrize("top_k,top_p,min_p", [(20, 0.9, 0.3), (0, 0.9, 0.0), (0, 1.0, 0.05), (0, 0.95, 0.02),
                                                (50, 1.0, 0.0), (5, 1.0, 0.0), (20, 0.7, 0.0), (250, 0.9, 0.0)])
def test_sampler_filters_match_transformers_warpers(top_k, top_p, min_p):
    """Rows peaked and flat (flat ones reach past the 32 candidates: the full-sort fallback), three temperatures:
    the same token as sampling, at the same uniform, from transformers' filtered distribution."""
    import torch

    from r1cli.generation import sample_tokens

    g = torch.Generator().manual_seed(1)
    V = 200
    logits = torch.cat([torch.randn(64, V, generator=g) * 6, torch.randn(64, V, generator=g) * 0.3])
    u = torch.rand(128, generator=g, dtype=torch.float64)
    for t in (1.0, 0.6, 1.5):
        got = sample_tokens(logits, u, t, top_p, top_k, min_p)
        want = _reference_warpers(logits, u, t, top_k, top_p, min_p)
        assert torch.equal(got, want), (t, (got != want).sum())


def test_vllm_backend_without_vllm_is_a_clear_stage_error(tiny):
    import importlib.util

    from r1cli.errors import StageError
    from r1cli.generation import generate

    model, tok = tiny
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    with pytest.raises(StageError, match="vllm"):
        generate(model, tok, ["x"], backend="vllm", progress=False)


def test_bad_arguments(tiny):
    from r1cli.generation import generate

    model, tok = tiny
    with pytest.raises(ValueError, match="top_p"):
        generate(model, tok, ["x"], top_p=0.0)
    with pytest.raises(ValueError, match="n must"):
        generate(model, tok, ["x"], n=0)
    with pytest.raises(ValueError, match="top_k"):
        generate(model, tok, ["x"], top_k=-1)
    with pytest.raises(ValueError, match="min_p"):
        generate(model, tok, ["x"], min_p=1.0)
    assert generate(model, tok, [], progress=False) == []
