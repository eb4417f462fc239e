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

Why the corpus has two solution styles (room for RL; see ../shared/notes/grpo-tiny.md). With one style GRPO moved
accuracy ~1 point: a binary reward on a few thousand prompts cannot out-teach ~100k supervised examples. RL shows
its effect when the base *sometimes* does something that pays off. So each pretraining completion is written in
one of two styles, chosen by the first word after `<think>\\n`:

- `detailed` ("Step by step:", a minority of the corpus, `detailed_share`): one line per prompt line,
  `c: 13+7=20`. Each step is trivial (a one-digit addition to a total copied from the line above) and its operand
  is found by its label `c:` in the prompt — a content lookup — instead of by counting lines, which the tiny model
  could not do (it fetched term k right 12–15% of the time for k >= 3 in the note's running-sum base).
- `terse` ("All at once.", the majority): the answer directly, i.e. a sum of 6–8 signed digits in one forward
  pass, which the model gets right much less often.

The corpus starts at `detailed_share_start` (50%) detailed and anneals to `detailed_share` (25%) by 75% of the
steps: the early excess teaches the skill, the late mix sets the style prior. Every optimizer step holds the corpus
mix (rows sorted by length into accumulated micro-batches): with length-bucketed steps, whole steps were one style
and the style prior swung from batch to batch (a base built that way chose `detailed` 0.8% of the time).

The base therefore picks the more reliable style only sometimes; GRPO can raise accuracy (and response length,
the paper's "thinks longer") by shifting that one early choice. Measure the precondition with
`evaluate_accuracy(..., prefix=task.style_prefix(style))`: the forced detailed style must be clearly more accurate
than the forced terse one. Measured on the default preset (`tiny`, seed 0, 6-8 steps per problem, 1.69M params,
800 steps x 32 rows = 2.6M tokens, 2 threads on an idle 2-core machine: 6.0k tokens/s, 433 s), on 1,000 held-out
problems: T=1 12.8% ± 1.1 with the detailed style chosen 24%; forced detailed 36.5% ± 1.5, forced terse
6.5% ± 0.8; T=0.6 11.5%; greedy 6.9% (always terse); 63% of G=8 groups have reward variance. Shifting the one
style token is worth ~+24 points to RL. The same recipe with 8-10 steps gave 4.9% at T=1 (a 2-thread build;
an earlier 1-thread build of it measured 13.7%, so builds vary by several points), forced detailed 33%, terse
4.4%. Per-line diagnosis of forced greedy traces (8-10 steps): label 100%, running-total copy 100%, one-digit
sums 98.7%, operand fetched by label 87.8% (100% on lines 1-2, 70% on lines 9-10) — the lookup, not the
arithmetic, limits the detailed style. An earlier build with length-bucketed (single-style) steps reached only
3.8% natural / 0.2% forced detailed at step 300 of 800. Under CPU contention use 1 torch thread or
OMP_WAIT_POLICY=PASSIVE: OpenMP spin-waits made a 2-thread build ~7x slower when other processes held the cores.

Opt-in third style, for the language-mixing finding (preset `tiny-mix`; `mixed_share` > 0 needs a task with a
`mixed` style, e.g. `arith` with `mixed_style`): a share `mixed_share` of the detailed-style rows is written in
the `mixed` version instead (the same steps with Chinese words, see `r1cli.tasks.arith`), drawn with a separate
RNG, so the detailed/terse choice of every row is that of the same preset without it. With `mixed_share` = 0 (every
other preset) the corpus, the tokenizer and the cache key are those of a build without the field.

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
