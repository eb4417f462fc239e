"""`ColdstartConfig`: the config of `r1 coldstart`, r1's SFT options (`r1cli.sft_config.SFTStageConfig`: TRL's
`SFTConfig` plus r1cli's field groups), declared a floor below so that `r1 distill` shares them without importing
this stage."""

from __future__ import annotations

from dataclasses import dataclass

from r1cli.sft_config import SFTStageConfig


@dataclass
class ColdstartConfig(SFTStageConfig):
    """`r1 coldstart`: SFT on long, readable chain-of-thought examples (the paper's cold start)."""
