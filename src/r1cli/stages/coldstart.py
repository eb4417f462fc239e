"""`r1 coldstart`: SFT on a small set of long, readable chain-of-thought examples (paper §2.3.1).

Reads top to bottom: resolve the input dataset -> shape rows into prompt/completion -> TRL SFTTrainer ->
save the model (or LoRA adapter) to `<output>/model`. The config is `ColdstartConfig` (TRL's SFTConfig + r1cli).
"""

from __future__ import annotations

from typing import Any

from r1cli.data_io import load_dataset_input
from r1cli.errors import ConfigError
from r1cli.sft import train_sft


def training_data(cfg: Any, run: Any) -> Any:
    if not cfg.input:
        raise ConfigError("r1 coldstart needs training data", hint="pass --input DATASET (e.g. from `r1 data --cold-start`)")
    ds, ref = load_dataset_input(cfg.input, columns=cfg.columns)
    run.add_input(ref)
    return ds


def dry_run(cfg: Any, n: int, inputs: Any) -> Any:
    from r1cli.sft import sft_dry_run

    return sft_dry_run("coldstart", cfg, training_data(cfg, inputs), n)


def run(cfg: Any, run: Any) -> dict[str, Any]:
    ds = training_data(cfg, run)
    with run.timed("train"):
        metrics = train_sft(cfg, run, ds, resume=run.resume)
    return {"metrics": metrics}
