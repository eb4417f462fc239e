"""The embedded tiny base model: a byte-level BPE tokenizer and a small Qwen2 causal LM, built here from scratch.

`ensure_base(preset)` trains the tokenizer, pretrains the model on the built-in `arith` corpus for a fixed number
of steps (deterministic by seed) and saves a plain Hugging Face folder (config.json, model.safetensors, tokenizer
files with a ChatML chat template) that `AutoModelForCausalLM` / `AutoTokenizer.from_pretrained` load without
r1cli. Builds are cached under `$R1CLI_CACHE` (default `~/.cache/r1cli`) by a hash of the full build config and
`TINYBASE_VERSION`; a cached build counts only when its manifest (written last, then the folder renamed into place)
matches the key and the files' hashes.

Format the model learns: `build_prompt(question, "chat", tok, instruction=None)`, then a completion
`<think>\\n...\\n</think>\\n<answer>\\nN\\n</answer>`, then `<|im_end|>` (the EOS). The R1 tags are ordinary text
(TRL decodes completions with special tokens skipped); only `<|im_start|>`, `<|im_end|>` and `<|endoftext|>` (pad)
are special. The BPE is trained with Qwen2's own pre-tokenization (NFC, Qwen2's split regex, ByteLevel without
regex) because transformers 5 rebuilds a qwen2 tokenizer's pre-tokenizer on load.

Why the corpus has two solution styles: RL shows its effect only when the base *sometimes* does something that
pays off (with one style GRPO moved accuracy by about a point). Each pretraining completion is written in one of two
styles, chosen by the first word after `<think>\n`:

- `detailed` ("Step by step:", a minority of the corpus, `detailed_share`): one line per prompt line,
  `c: 13+7=20`; each operand is found by its label `c:` in the prompt (a content lookup) rather than by counting
  lines, which the tiny model could not do.
- `terse` ("All at once.", the majority): the answer directly, which the model gets right much less often.

The corpus starts at `detailed_share_start` (50%) detailed and anneals to `detailed_share` (25%) by 75% of the
steps: the early excess teaches the skill, the late mix sets the style prior. Every optimizer step holds the corpus
mix (rows sorted by length into accumulated micro-batches), so the style prior does not swing from batch to batch.
The precondition for RL is checked with `evaluate_accuracy(..., prefix=task.style_prefix(style))`: the forced
detailed style must be clearly more accurate than the forced terse one. The measurements behind these choices are
in `docs/design-notes.md`.

Opt-in third style, for the language-mixing finding (preset `tiny-mix`; `mixed_share` > 0 needs a task with a
`mixed` style, e.g. `arith` with `mixed_style`): a share `mixed_share` of the detailed-style rows is written in
the `mixed` version instead (the same steps with Chinese words, see `r1cli.tasks.arith`), drawn with a separate
RNG, so the detailed/terse choice of every row is that of the same preset without it. With `mixed_share` = 0 (every
other preset) the corpus, the tokenizer and the cache key are those of a build without the field. With a task that
has mixed versions of both styles (`arith` with `mixed_marker`: `detailed_mixed`, `terse_mixed`; preset
`tiny-lang`), every row, of either style, is written in its style's mixed version with probability `mixed_share`
instead, so the language choice is independent of the style choice (finding (c)).

Departures from a real base: the corpus is one synthetic task, and the style prior is
set by the corpus mix rather than learned from the web.

The package, one module per job: `config.py` (TinyBaseConfig, the presets, the cache key), `tokenizer.py`,
`pretrain.py` (corpus, batches, training), `cache.py` (`ensure_base`, `build`, the lock and the build manifest),
`report.py` (`evaluate_accuracy`, `style_report`); `python -m r1cli.tinybase` (`__main__.py`) prints a style report.
"""

from r1cli.tinybase.cache import MANIFEST, build, build_info, ensure_base, is_complete
from r1cli.tinybase.config import PRESETS, TINYBASE_VERSION, TinyBaseConfig, preset_config
from r1cli.tinybase.pretrain import (
    batches,
    collate,
    corpus_rows,
    detailed_share_at,
    encode_pairs,
    lr_at,
    model_config,
    pretrain,
)
from r1cli.tinybase.report import evaluate_accuracy, style_report
from r1cli.tinybase.tokenizer import (
    BOS_TURN,
    CHAT_TEMPLATE,
    EOS,
    PAD,
    QWEN2_SPLIT_REGEX,
    SPECIALS,
    train_tokenizer,
)

__all__ = [
    "BOS_TURN",
    "CHAT_TEMPLATE",
    "EOS",
    "MANIFEST",
    "PAD",
    "PRESETS",
    "QWEN2_SPLIT_REGEX",
    "SPECIALS",
    "TINYBASE_VERSION",
    "TinyBaseConfig",
    "batches",
    "build",
    "build_info",
    "collate",
    "corpus_rows",
    "detailed_share_at",
    "encode_pairs",
    "ensure_base",
    "evaluate_accuracy",
    "is_complete",
    "lr_at",
    "model_config",
    "preset_config",
    "pretrain",
    "style_report",
    "train_tokenizer",
]
