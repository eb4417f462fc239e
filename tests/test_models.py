"""The one model loader: local folders, run folders, adapters, hub ids, errors, LoRA and QLoRA on CPU.

The models here are random tiny Qwen2s (hidden 64, 2 layers, q/k/v projections with bias) built in the test with a
BPE tokenizer trained on a few lines: loading, LoRA and 4-bit code paths do not need a trained model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1cli.config_groups import ModelArgs
from r1cli.errors import EXIT_INPUT, InputArtifactError

CORPUS = [
    "What is 12 + 7? <think>12 + 7 = 19</think> <answer>19</answer>",
    "Compute 3 - 45. <think>3 - 45 = -42</think> <answer>-42</answer>",
    "hello world, the quick brown fox jumps over the lazy dog",
] * 4


def make_tiny_qwen2(path: Path, hidden: int = 64, seed: int = 0) -> Path:
    """A random Qwen2ForCausalLM (hidden `hidden`, 2 layers) and a byte-level BPE tokenizer saved to `path`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(CORPUS, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>")  # no pad token on purpose
    cfg = Qwen2Config(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return make_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2") / "model")


def write_run(folder: Path, model_src: Path | None, *, kind: str = "model", status: str = "complete", model_spec=None):
    """An r1cli run folder holding a copy of `model_src` in model/ with a manifest of `kind`/`status`."""
    import shutil

    folder.mkdir(parents=True)
    if model_src is not None:
        shutil.copytree(model_src, folder / "model")
    (folder / "config.yaml").write_text("model: x\n")
    man = {"schema_version": 1, "kind": kind, "stage": "base", "status": status, "config": {"model": model_spec}}
    (folder / "manifest.json").write_text(json.dumps(man))
    return folder


def logits(model, tok, text: str = "What is 12 + 7?"):
    import torch

    with torch.no_grad():
        return model(**tok([text], return_tensors="pt")).logits.float()


# ------------------------------------------------------------------------------------------- resolution


def test_resolve_local_folder_run_folder_and_hub_id(tiny_dir, tmp_path):
    from r1cli.models import resolve_model

    assert resolve_model(str(tiny_dir)) == str(tiny_dir)
    run = write_run(tmp_path / "run", tiny_dir)
    assert resolve_model(str(run)) == str(run / "model")
    # a hub id is passed through unchanged (loaded later by the same from_pretrained code)
    assert resolve_model("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen/Qwen2.5-1.5B-Instruct"


def test_preset_resolves_to_the_cached_build(tiny_base_path):
    from r1cli.models import load_model, model_ref, resolve_model

    assert resolve_model("tiny-test") == str(tiny_base_path)
    model, tok = load_model(ModelArgs(model="tiny-test"))
    assert type(model).__name__ == "Qwen2ForCausalLM" and tok.padding_side == "left"
    ref = model_ref("tiny-test")
    assert ref.path == tiny_base_path and ref.content_hash and ref.kind == "model"


def test_missing_path_is_one_line_exit_3(tmp_path):
    from r1cli.models import resolve_model

    with pytest.raises(InputArtifactError) as e:
        resolve_model(str(tmp_path / "nope" / "model"))
    assert e.value.exit_code == EXIT_INPUT
    assert "does not exist" in e.value.message and "\n" not in e.value.message


@pytest.mark.parametrize(
    ("kind", "status", "needle"), [("dataset", "complete", "dataset"), ("model", "running", "not 'complete'")]
)
def test_run_folder_of_wrong_kind_or_unfinished_is_refused(tiny_dir, tmp_path, kind, status, needle):
    from r1cli.models import resolve_model

    run = write_run(tmp_path / "run", tiny_dir, kind=kind, status=status)
    with pytest.raises(InputArtifactError, match=needle):
        resolve_model(str(run))


def test_unknown_preset_name_is_not_a_hub_id():
    from r1cli.models import load_model

    with pytest.raises(InputArtifactError, match="does not exist"):
        load_model(ModelArgs(model="tinyy"))


# ------------------------------------------------------------------------------------------- loading


def test_load_local_folder_defaults(tiny_dir):
    import torch

    from r1cli.models import load_model, load_tokenizer

    model, tok = load_model(ModelArgs(model=str(tiny_dir)))
    assert model.dtype == torch.float32 and not model.training
    assert type(model).__name__ == "Qwen2ForCausalLM"
    # a pad token (transformers maps a qwen2 model's tokenizer to Qwen2Tokenizer, whose pad is <|endoftext|>)
    assert tok.pad_token is not None and tok.padding_side == "left"
    batch = tok(["1 + 2", "What is 12 + 7? <think>"], return_tensors="pt", padding=True)
    assert batch["attention_mask"][0, 0] == 0 and batch["attention_mask"][0, -1] == 1
    out = model.generate(**batch, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape == (2, batch["input_ids"].shape[1] + 4)
    tok2 = load_tokenizer(ModelArgs(model=str(tiny_dir)))
    assert tok2("12 + 7")["input_ids"] == tok("12 + 7")["input_ids"]


def test_prepare_tokenizer_sets_missing_pad_token(tiny_dir):
    from transformers import PreTrainedTokenizerFast

    from r1cli.models import prepare_tokenizer

    tok = PreTrainedTokenizerFast(tokenizer_file=str(tiny_dir / "tokenizer.json"), eos_token="<|im_end|>")
    assert tok.pad_token is None
    prepare_tokenizer(tok)
    assert tok.pad_token == "<|im_end|>" and tok.padding_side == "left"
    bare = PreTrainedTokenizerFast(tokenizer_file=str(tiny_dir / "tokenizer.json"))
    prepare_tokenizer(bare)
    assert bare.pad_token == "<|pad|>" and bare.pad_token_id == len(bare) - 1


def test_dtype_option(tiny_dir):
    import torch

    from r1cli.models import load_model

    model, _ = load_model(ModelArgs(model=str(tiny_dir), dtype="bfloat16"))
    assert model.dtype == torch.bfloat16


def test_load_run_folder_equals_plain_folder(tiny_dir, tmp_path):
    import torch

    from r1cli.models import load_model

    run = write_run(tmp_path / "run", tiny_dir)
    a, tok = load_model(ModelArgs(model=str(tiny_dir)))
    b, _ = load_model(ModelArgs(model=str(run)))
    assert torch.equal(logits(a, tok), logits(b, tok))


def test_hub_id_goes_through_from_pretrained_and_fails_in_one_line_offline(monkeypatch):
    """No network here: the hub path must fail with exit 3 and one line (offline mode only to avoid retries)."""
    import huggingface_hub.constants

    from r1cli.models import load_model

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputArtifactError) as e:
        load_model(ModelArgs(model="r1cli-test-org/no-such-model"))
    assert "r1cli-test-org/no-such-model" in e.value.message and "\n" not in e.value.message
    assert "hub" in e.value.message and "preset" in e.value.hint


def test_other_architecture_is_refused(tiny_dir, tmp_path):
    from transformers import AutoConfig, BertConfig, BertModel, Qwen2ForSequenceClassification

    from r1cli.models import load_model

    bert = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(bert).save_pretrained(tmp_path / "bert")
    with pytest.raises(InputArtifactError, match="'bert' checkpoint .BertModel., not a causal language model"):
        load_model(ModelArgs(model=str(tmp_path / "bert")))
    # a reward-model head on a causal architecture is not a policy either
    cfg = AutoConfig.from_pretrained(tiny_dir)
    cfg.num_labels = 1
    Qwen2ForSequenceClassification(cfg).save_pretrained(tmp_path / "rm")
    with pytest.raises(InputArtifactError, match="Qwen2ForSequenceClassification., not a causal language model"):
        load_model(ModelArgs(model=str(tmp_path / "rm")))


def test_pickled_weights_are_refused(tiny_dir, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    from r1cli.models import load_model

    d = tmp_path / "binonly"
    shutil.copytree(tiny_dir, d)
    torch.save(load_file(d / "model.safetensors"), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    with pytest.raises(InputArtifactError, match="safetensors"):
        load_model(ModelArgs(model=str(d)))


def test_dataset_folder_is_not_a_model(tmp_path):
    from r1cli.models import load_model

    d = tmp_path / "ds"
    d.mkdir()
    (d / "dataset_info.json").write_text("{}")
    with pytest.raises(InputArtifactError, match="dataset folder"):
        load_model(ModelArgs(model=str(d)))


# ------------------------------------------------------------------------------------------- LoRA / adapters


def _train_steps(model, tok, steps: int = 2, lr: float = 1e-2) -> list[float]:
    import torch

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    batch = tok(CORPUS[:2], return_tensors="pt", padding=True)
    losses = []
    for _ in range(steps):
        model.train()
        loss = model(**batch, labels=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def test_lora_train_save_reload_and_merge(tiny_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from r1cli.models import count_parameters, load_model, merge_adapter, save_model

    args = ModelArgs(model=str(tiny_dir), use_peft=True, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    model, tok = load_model(args, for_training=True)
    assert isinstance(model, PeftModel) and model.training
    trainable = count_parameters(model, trainable_only=True)
    assert 0 < trainable < count_parameters(model) / 2
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    losses = _train_steps(model, tok, steps=3)
    assert losses[-1] < losses[0]
    model.eval()
    want = logits(model, tok)

    adapter = save_model(model, tok, tmp_path / "adapter")
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
    assert not list(adapter.glob("*.bin"))

    # an adapter folder for inference: base + adapter, merged
    merged_in_memory, _ = load_model(ModelArgs(model=str(adapter)))
    assert not isinstance(merged_in_memory, PeftModel)
    torch.testing.assert_close(logits(merged_in_memory, tok), want, atol=1e-4, rtol=1e-4)

    # the adapter folder for training with use_peft keeps training the same adapter
    again, _ = load_model(ModelArgs(model=str(adapter), use_peft=True), for_training=True)
    assert isinstance(again, PeftModel) and any(p.requires_grad for p in again.parameters())

    # merge_adapter writes a full model that plain transformers loads
    out = merge_adapter(adapter, tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(out)
    torch.testing.assert_close(logits(plain, tok), want, atol=1e-4, rtol=1e-4)
    assert not (out / "adapter_config.json").exists()


def test_adapter_whose_base_moved_uses_the_run_manifest(tiny_dir, tmp_path):
    import shutil

    from r1cli.models import load_model, save_model

    base_copy = tmp_path / "base"
    shutil.copytree(tiny_dir, base_copy)
    model, tok = load_model(ModelArgs(model=str(base_copy), use_peft=True, lora_r=2), for_training=True)
    save_model(model, tok, tmp_path / "adapter")
    run = write_run(tmp_path / "run", tmp_path / "adapter", model_spec=str(tiny_dir))
    shutil.rmtree(base_copy)  # base_model_name_or_path now points nowhere
    m, _ = load_model(ModelArgs(model=str(run)))
    assert type(m).__name__ == "Qwen2ForCausalLM"
    shutil.rmtree(run / "model")
    shutil.copytree(tmp_path / "adapter", tmp_path / "lonely")
    with pytest.raises(InputArtifactError, match="base model .* cannot be found"):
        load_model(ModelArgs(model=str(tmp_path / "lonely")))


def test_qlora_cpu_eval_train_eval_train(tmp_path):
    """4-bit + LoRA on CPU survives no-grad eval forwards between training steps (bitsandbytes 0.50 workaround)."""
    import bitsandbytes as bnb
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from r1cli.models import count_parameters, load_model, merge_adapter, save_model

    d = make_tiny_qwen2(tmp_path / "m", hidden=64)  # q/k/v have bias: the layers that broke
    args = ModelArgs(model=str(d), load_in_4bit=True, use_peft=True, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    model, tok = load_model(args, for_training=True)
    assert isinstance(model, PeftModel)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(m.support_avx512bf16_for_cpu is False for m in layers)
    assert any(m.bias is not None for m in layers)
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    losses = []
    for _ in range(2):
        model.eval()
        with torch.no_grad():
            ev = logits(model, tok)
        assert torch.isfinite(ev).all()
        losses += _train_steps(model, tok, steps=1)
    assert all(torch.isfinite(torch.tensor(losses)))
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, lora_before[n])]
    assert changed, "LoRA weights did not move"
    out = save_model(model, tok, tmp_path / "qlora")
    assert (out / "adapter_model.safetensors").is_file()
    # the 4-bit adapter folder loads back for inference (unmerged on a 4-bit base)
    m2, _ = load_model(ModelArgs(model=str(out), load_in_4bit=True, use_peft=True))
    assert torch.isfinite(logits(m2, tok)).all()
    # 4-bit weights count at their logical size: same total as the full-precision model with the same adapter
    full, _ = load_model(ModelArgs(model=str(d), use_peft=True, lora_r=4, lora_alpha=8), for_training=True)
    assert count_parameters(model) == count_parameters(full)
    # merging a QLoRA adapter goes into the full-precision base
    merged = merge_adapter(out, tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(merged)
    assert plain.dtype == torch.float32 and torch.isfinite(logits(plain, tok)).all()
