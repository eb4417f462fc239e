"""`RLConfig`: the config of `r1 rl`, every GRPO stage option (`r1cli.grpo.config.GRPOStageConfig`: a
`trl.GRPOConfig` plus r1cli's model loader, prompt source, rendering, rewards, dynamic sampling, rollout speed-ups,
preflight and held-out eval), declared a floor below so that `r1 align` shares it without importing this stage."""

from __future__ import annotations

from dataclasses import dataclass

from r1cli.grpo.config import GRPOStageConfig


@dataclass
class RLConfig(GRPOStageConfig):
    """`r1 rl`: GRPO with rule rewards (the paper's R1-Zero and reasoning RL stages)."""
