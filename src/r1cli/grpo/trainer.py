"""`R1GRPOTrainer`: TRL's `GRPOTrainer` with r1cli's GRPO maths, faster rollouts and scoring, and DAPO dynamic sampling.

TRL keeps the training loop, data loading, rollout bookkeeping, reward calls, logging, checkpoints and PEFT. This
class overrides TRL's hooks (the private ones, and what they rely on, are listed in `trl_private`) and delegates
each to one module; it copies none of TRL's long methods:

- `_compute_loss` -> `step_loss`: `r1cli.grpo.loss.grpo_loss` (every objective and loss option of TRL 1.16, and
  GSPO-token, under TRL's option names) with TRL's gradient accumulation, rollout correction and entropy control.
- `_generate_and_score_completions` runs TRL's (sampling, rewards, π_old and reference log-probs), then
  `dynamic_sampling` when on, then computes `r1cli.grpo.loss`'s advantages once, for the final batch, in place of
  TRL's (which TRL computes inline, with no hook to skip that step; see `trl_private`).
  `_calculate_rewards` puts back a `<think>` the template pre-filled before TRL's reward calls and keeps the raw
  per-function rewards, which TRL does not return.
- `_generate_single_turn` samples with `r1cli.generation.generate` on the plain transformers backend (prompts
  prefilled once per group, finished rows leave the batch, log-probs kept); `_get_per_token_logps_and_entropies`
  scores with `scoring` (length buckets, shared prompt prefix, the sampler's log-probs as π_old).
- `_tokenize_prompts` sends rendered text through r1cli's one prompt -> token path (TRL's `tokenizer(text)` adds
  a second BOS after a template that writes one); `_generate` records rollouts for the preflight check.
- `log` / `training_step` feed `observability`; `_save_checkpoint` / `_load_optimizer_and_scheduler` carry the
  dynamic-sampling stream position.

Reference model (`beta > 0`): with PEFT there is no second copy of the base (TRL disables the adapter, or keeps a
frozen "ref" copy of a pre-trained adapter); without PEFT this class keeps a frozen deep copy of the policy as it
was passed in, where TRL would reload it from `config._name_or_path` (which fails for in-memory models).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from trl import GRPOTrainer

from r1cli.generation import generate
from r1cli.grpo import scoring
from r1cli.grpo import trl_private as trl
from r1cli.grpo.dynamic_sampling import DynamicSampler, Scored
from r1cli.grpo.loss import compute_advantages, compute_advantages_per_reward, total_rewards
from r1cli.grpo.observability import Observer
from r1cli.grpo.scoring import ScoringOptions, plan_buckets
from r1cli.grpo.step_loss import step_loss
from r1cli.prompts import as_written, encode_prompt, prefilled_think

__all__ = ["R1GRPOTrainer", "plan_buckets"]


def _option(args: Any, name: str) -> Any:
    """An r1cli field of the GRPO stage config; a plain `trl.GRPOConfig` gets its default."""
    from r1cli.grpo.config import GRPOStageConfig

    return getattr(args, name, GRPOStageConfig.__dataclass_fields__[name].default)


def _is_peft_model(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


class R1GRPOTrainer(GRPOTrainer):
    """GRPO with r1cli's loss and advantages (`r1cli.grpo.loss`) on TRL's `GRPOTrainer`.

    Takes TRL's arguments (`args` is an `RLConfig`, whose options are checked when it is built, or a plain
    `trl.GRPOConfig`) plus `ref_model`: the frozen reference for `beta > 0` without PEFT (default: a copy of
    `model` taken before training).
    """

    def __init__(self, model: Any, reward_funcs: Any = None, args: Any = None, *, ref_model: Any = None, **kwargs):
        if args is None:
            raise ValueError("R1GRPOTrainer needs args (an RLConfig or trl.GRPOConfig)")
        own_ref = (
            args.beta != 0.0
            and isinstance(model, torch.nn.Module)
            and kwargs.get("peft_config") is None
            and not _is_peft_model(model)
        )
        if own_ref and args.cast_lm_head_to_fp32:
            raise ValueError("cast_lm_head_to_fp32 with beta > 0 and no PEFT is not supported by R1GRPOTrainer")
        if own_ref:
            ref_model = ref_model if ref_model is not None else copy.deepcopy(model)
            with trl.without_trl_reference(args):
                super().__init__(model, reward_funcs, args, **kwargs)
            trl.adopt_ref_model(self, ref_model)
        else:
            if ref_model is not None:
                raise ValueError("ref_model is used only with beta > 0 and without PEFT")
            super().__init__(model, reward_funcs, args, **kwargs)

        self.fast_generation = bool(_option(args, "fast_generation"))
        self.sampler_correction = bool(_option(args, "sampler_importance_sampling_correction"))
        self.scoring = ScoringOptions(
            length_buckets=bool(_option(args, "length_buckets")),
            share_prompt_prefix=bool(_option(args, "share_prompt_prefix")),
            max_logits_bytes=int(_option(args, "prefix_sharing_max_logits_mb")) * 2**20,
            reuse_generation_logprobs=bool(_option(args, "reuse_generation_logprobs")),
            temperature=self.temperature,
            num_generations=self.num_generations,
            cast_lm_head_to_fp32=bool(args.cast_lm_head_to_fp32),
        )
        self.dynamic_sampler = None
        if _option(args, "dynamic_sampling"):
            self.dynamic_sampler = DynamicSampler(
                self.train_dataset,
                seed=args.seed,
                max_tries=_option(args, "max_resample_tries"),
                num_processes=self.accelerator.num_processes,
            )
        out = _option(args, "output")
        self.observer = Observer(
            Path(out) if out else Path(args.output_dir),
            log_completions_every=_option(args, "log_completions_every"),
            log_prompts=_option(args, "log_prompts"),
        )
        self._handoff = trl.HookHandoff()  # the one channel between hooks within a TRL call
        self._rollout_log: list[dict[str, Any]] | None = None  # set by r1cli.grpo.preflight while it samples
        self.last_scored: Scored | None = None  # the latest generation batch with its rewards (all processes)

    # ------------------------------------------------------------------ rollouts

    def _tokenize_prompts(self, prompts: list):
        # one BOS at most: TRL's `tokenizer(text)` would add a second after a template that writes one
        if prompts and all(isinstance(p, str) for p in prompts):
            return [encode_prompt(trl.tokenizer(self), p) for p in prompts], None, {}
        return super()._tokenize_prompts(prompts)

    def _generate(self, prompts: list):
        out = super()._generate(prompts)
        if self._rollout_log is not None:  # the preflight check reads the rollouts as TRL decoded them
            self._rollout_log.append(trl.rollout_record(out))
        return out

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if not (self.fast_generation and trl.plain_sampling(self, images, multimodal_fields)):
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        with trl.generation_model(self) as unwrapped_model:
            # one seed per call from torch's RNG (seeded by TRL, saved in checkpoints), apart per process: the
            # engine's counter-based draws would otherwise repeat for a prompt seen again or on another process
            seed = int(torch.randint(0, 2**31 - 1, ())) + 7919 * self.accelerator.process_index
            samples = generate(
                unwrapped_model,
                trl.tokenizer(self),
                [list(p) for p in prompt_ids],  # one row each; repeated prompts get fresh samples, one prefill
                n=1,
                seed=seed,
                progress=False,
                logprobs=True,
                **trl.sampling_options(self),
            )
        completion_ids = [s[0].token_ids for s in samples]
        logprobs = [s[0].logprobs for s in samples]
        stand_in = scoring.sampler_logps_stand_in(
            self.scoring,
            self.model,
            trl_computes_old=trl.computes_old_logps(self),
            half_precision=bool(self.args.bf16 or self.args.fp16),
            pad_to_multiple_of=self.pad_to_multiple_of,
        )
        self._handoff.sampler_old_logps = (
            scoring.sampler_old_logps(logprobs, self.accelerator.device) if stand_in else None
        )
        return completion_ids, logprobs

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **kwargs,
    ):
        old = self._handoff.sampler_old_logps
        if (
            old is not None
            and model is self.model
            and scoring.is_old_logps_call(
                old, input_ids, logits_to_keep, compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss
            )
        ):
            self._handoff.sampler_old_logps = None  # TRL's π_old forward: the sampler already scored these tokens
            return old, None, None
        return scoring.token_logps(
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            options=self.scoring,
            accelerator=self.accelerator,
            trl_forward=trl.trl_token_logps(self),
            batch_size=batch_size,
            compute_entropy=compute_entropy,
            compute_aux_loss=compute_aux_loss,
            **kwargs,
        )

    # ------------------------------------------------------------------ rewards, dynamic sampling, advantages

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # rewards read the completion as the model wrote it: a `<think>` the template pre-filled is put back, as
        # `r1 eval` and reject-sample do before grading
        completions = [
            as_written(prefilled_think(p), c) if isinstance(p, str) and isinstance(c, str) else c
            for p, c in zip(prompts, completions, strict=True)
        ]
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._handoff.rewards_per_func = rewards_per_func
        return rewards_per_func

    def _score_once(self, inputs: list[dict[str, Any]]) -> Scored:
        """TRL's generate-and-score of one generation batch, with the per-function and total rewards."""
        self._handoff.clear()
        try:
            batch = super()._generate_and_score_completions(inputs)
            rewards_per_func = self._handoff.rewards_per_func
        finally:
            self._handoff.clear()
        if rewards_per_func is None:  # pragma: no cover - TRL always scores through _calculate_rewards
            raise RuntimeError("TRL did not call _calculate_rewards")
        return Scored(batch, rewards_per_func, total_rewards(rewards_per_func, self.reward_weights))

    def _generate_and_score_completions(self, inputs):
        training = self.model.training
        G = self.num_generations if training else self.num_generations_eval
        scored = self._score_once(inputs)
        if self.dynamic_sampler is not None and training:
            pad_id = trl.tokenizer(self).pad_token_id
            scored = self.dynamic_sampler.fill(scored, self._score_once, G, trl.metrics(self, "train"), pad_id)
        if self.multi_objective_aggregation == "normalize_then_sum":  # GDPO: per reward function first
            advantages = compute_advantages_per_reward(scored.rewards_per_func, self.reward_weights, G)
        else:
            advantages = compute_advantages(scored.rewards, G, self.scale_rewards)
        batch = scored.batch
        n_local = batch["completion_ids"].size(0)
        rows = slice(self.accelerator.process_index * n_local, (self.accelerator.process_index + 1) * n_local)
        batch["advantages"] = advantages[rows].to(batch["completion_ids"].device)  # replaces TRL's
        self.last_scored = scored
        if training:
            self.observer.record_batch(
                self.state.global_step + 1,  # the optimizer step this batch is generated for
                inputs,
                batch,
                scored.rewards[rows],
                scored.rewards_per_func[rows],
                is_main=self.accelerator.is_main_process,
            )
        return batch

    # ------------------------------------------------------------------ loss

    def _compute_loss(self, model, inputs):
        return step_loss(self, model, inputs)

    # ------------------------------------------------------------------ observability

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.observer.start_clock(self.state.num_input_tokens_seen)
        return super().training_step(model, inputs, num_items_in_batch)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training and "loss" in logs:
            self.observer.add_throughput(logs, self.state.num_input_tokens_seen)
        super().log(logs, start_time)
        if self.observer.samples_due(self.state.global_step, self.accelerator.is_main_process):
            self.observer.log_samples(
                self.state.global_step,
                trl.tokenizer(self),
                list(self.reward_func_names),
                num_to_print=self.args.num_completions_to_print,
                group_size=self.num_generations,
            )

    # ------------------------------------------------------------------ checkpoints

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.dynamic_sampler is not None and self.args.should_save:
            self.dynamic_sampler.save(trl.checkpoint_dir(self, trial))

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if self.dynamic_sampler is not None and checkpoint is not None:
            self.dynamic_sampler.load(checkpoint)
