"""SFT's loss covers exactly the completion and its EOS (README: "loss on the completion + EOS only").

Checked on the batch the trainer really trains on: `train_sft` (the coldstart/distill path) runs up to
`trainer.train()`, where a capturing `SFTTrainer` takes the first batch of `get_train_dataloader()`, i.e. after
r1cli's rendering and tokenization and after TRL's own dataset preparation and collator. The expectations are
stated on text (what the model must write after the prompt), not on how the ids were built, so they hold whatever
way the stage tokenizes prompts.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

QUESTIONS = ["2+3", "17*3-4", "what is 100 - 1?"]
COMPLETIONS = [
    "<think>\n2+3=5\n</think>\n<answer>\n5\n</answer>",
    "<think>\n17*3=51, 51-4=47\n</think>\n<answer>\n47\n</answer>",
    " 99",  # a leading space: the prompt/completion boundary inside what could be one token
]


class _Captured(Exception):
    pass


@pytest.fixture
def first_batch(tiny_base_path, tmp_path, monkeypatch):
    import trl
    from datasets import Dataset

    from r1cli.config_loader import build
    from r1cli.sft import train_sft
    from r1cli.stages.coldstart_config import ColdstartConfig

    seen: dict = {}

    class CapturingSFTTrainer(trl.SFTTrainer):
        def train(self, *args, **kwargs):
            seen["batch"] = next(iter(self.get_train_dataloader()))
            seen["tokenizer"] = self.processing_class
            raise _Captured

    monkeypatch.setattr(trl, "SFTTrainer", CapturingSFTTrainer)  # train_sft imports it from trl when it runs
    cfg = build(ColdstartConfig, {
        "model": str(tiny_base_path), "output": str(tmp_path / "out"), "per_device_train_batch_size": len(QUESTIONS),
        "max_length": 256, "disable_tqdm": True,
    })
    rows = Dataset.from_list([{"prompt": q, "completion": c} for q, c in zip(QUESTIONS, COMPLETIONS, strict=True)])
    with pytest.raises(_Captured):
        train_sft(cfg, SimpleNamespace(add_input=lambda ref: None), rows, resume=False)
    return seen["batch"], seen["tokenizer"]


@pytest.mark.slow
def test_sft_loss_covers_exactly_the_completion_and_eos(first_batch):
    batch, tok = first_batch
    ids, labels, attn = batch["input_ids"].tolist(), batch["labels"].tolist(), batch["attention_mask"].tolist()
    assert len(ids) == len(QUESTIONS)
    got = {}
    for row_ids, row_labels, row_attn in zip(ids, labels, attn, strict=True):
        real = [i for i, a in enumerate(row_attn) if a]
        assert real == list(range(len(real))), "padding is on the right, after the sequence"
        trained = [i for i, lab in enumerate(row_labels) if lab != -100]
        assert trained, "a row without a single trained token"
        # one contiguous block that ends the sequence, labelled with the input ids themselves (the model shifts)
        assert trained == list(range(trained[0], len(real))), (trained, len(real))
        assert all(row_labels[i] == row_ids[i] for i in trained)
        prompt_text = tok.decode([row_ids[i] for i in real[: trained[0]]])
        trained_text = tok.decode([row_ids[i] for i in trained])
        question = next((q for q in QUESTIONS if f"\n{q}" in prompt_text), None)
        assert question, f"no question in the untrained part {prompt_text!r} (trained: {trained_text!r})"
        got[question] = (prompt_text, trained_text)
    assert sorted(got) == sorted(QUESTIONS)
    for q, completion in zip(QUESTIONS, COMPLETIONS, strict=True):
        prompt_text, trained_text = got[q]
        # the loss is on what the model writes after the prompt: the completion, then EOS, and nothing else
        assert trained_text == completion + tok.eos_token, (q, trained_text)
        # the prompt (untrained) is the rendered user turn up to the generation prompt
        assert prompt_text.endswith("<|im_start|>assistant\n"), prompt_text
        assert tok.eos_token not in trained_text[: -len(tok.eos_token)]
