"""`r1 merge`: write a merged full model from a LoRA/QLoRA adapter (base weights + B·A·scale), loadable by plain
`AutoModelForCausalLM.from_pretrained` without peft."""

from __future__ import annotations

from typing import Any


def run(cfg: Any, run: Any) -> dict[str, Any]:
    from r1cli.models import merge_adapter, model_ref

    run.add_input(model_ref(cfg.model))
    with run.timed("merge"):
        merge_adapter(cfg.model, run.model_dir, dtype=cfg.dtype)
    from transformers import AutoConfig

    arch = AutoConfig.from_pretrained(run.model_dir).architectures
    return {"metrics": {"architecture": (arch or ["?"])[0]}}
