"""The tiny base's tokenizer: a byte-level BPE trained with Qwen2's own pre-tokenization, saved as a Qwen2
tokenizer with a ChatML chat template (only `<|endoftext|>`, `<|im_start|>` and `<|im_end|>` are special)."""

from __future__ import annotations

import json
from typing import Any

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
PAD, BOS_TURN, EOS = SPECIALS
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Qwen2's split regex (transformers' tokenization_qwen2.PRETOKENIZE_REGEX), repeated so the BPE is trained with it
QWEN2_SPLIT_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A Qwen2 tokenizer (transformers) whose byte-level BPE is trained on `texts` with Qwen2's pre-tokenization.

    Special tokens: `<|endoftext|>` (pad) = 0, `<|im_start|>` = 1, `<|im_end|>` (EOS) = 2; ChatML chat template.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Qwen2Tokenizer(
        vocab=dict(model["vocab"]),
        merges=merges,
        unk_token=None,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens=[BOS_TURN],
        model_max_length=2048,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok
