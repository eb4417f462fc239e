"""R1's readability filters: each with a completion it rejects and one it keeps."""

from __future__ import annotations

import pytest

from r1cli.filters import FILTER_NAMES, ReadabilityFilters, first_failure

ENGLISH = (
    "We need the sum of the steps. Starting from zero we add seven and get seven. Then we take away three and "
    "the running total becomes four. Adding five gives nine, which is the final value of the sequence."
)
CHINESE = "我们需要计算这些步骤的总和。从零开始加七得到七，然后减去三得到四，再加五得到九，这就是最终结果。"


def r1(think: str, answer: str = "9") -> str:
    return f"<think>\n{think}\n</think>\n<answer>\n{answer}\n</answer>"


def test_clean_english_passes_every_filter():
    assert first_failure(r1(ENGLISH), ReadabilityFilters()) is None


def test_format_required_or_not():
    bare = "The answer is 9."
    assert first_failure(bare, ReadabilityFilters()) == "format"
    assert first_failure(bare, ReadabilityFilters(require_format=False)) is None
    chat = f"<think>\n{ENGLISH}\n</think>\nThe result is \\boxed{{9}}."
    assert first_failure(chat, ReadabilityFilters(format_style="chat")) is None
    assert first_failure(chat, ReadabilityFilters(format_style="r1-zero")) == "format"


def test_mixed_chinese_english_cot_rejected_pure_english_kept():
    mixed = r1(ENGLISH + "\n" + CHINESE)
    cfg = ReadabilityFilters()
    assert first_failure(mixed, cfg) == "language_mixing"
    # a lenient threshold keeps it; a Chinese target keeps pure Chinese
    assert first_failure(mixed, ReadabilityFilters(max_language_mixing=0.9)) is None
    assert first_failure(r1(CHINESE), ReadabilityFilters(language="zh")) is None
    assert first_failure(r1(CHINESE), cfg) == "language_mixing"
    assert first_failure(mixed, ReadabilityFilters(max_language_mixing=None)) is None


def test_long_paragraph_rejected_split_paragraphs_kept():
    words = (ENGLISH + " ") * 30  # one ~5,900-character paragraph
    para = words[:5000]
    assert len(para) == 5000
    assert first_failure(r1(para), ReadabilityFilters()) == "paragraph"
    split = "\n\n".join(para[i : i + 1000] for i in range(0, 5000, 1000))
    assert first_failure(r1(split), ReadabilityFilters(max_repetition=None)) is None
    assert first_failure(r1(para), ReadabilityFilters(max_paragraph_chars=6000, max_repetition=None)) is None


def test_code_block_in_reasoning_rejected_unless_allowed():
    code = r1(ENGLISH + "\n```python\nprint(7 - 3 + 5)\n```\nSo the total is nine.")
    assert first_failure(code, ReadabilityFilters()) == "code_block"
    assert first_failure(code, ReadabilityFilters(allow_code_blocks=True)) is None
    # inline backticks are not a fenced block, and a block in the summary is allowed
    inline = r1(ENGLISH + " We could write `7 - 3 + 5` too.")
    assert first_failure(inline, ReadabilityFilters()) is None
    summary_code = f"<think>\n{ENGLISH}\n</think>\n```python\nprint(9)\n```\nSo \\boxed{{9}}."
    assert first_failure(summary_code, ReadabilityFilters()) is None


def test_repetition_loop_rejected():
    loop = r1("Let me check again. " * 60)
    assert first_failure(loop, ReadabilityFilters()) == "repetition"
    assert first_failure(loop, ReadabilityFilters(max_repetition=None)) is None
    assert first_failure(r1(ENGLISH), ReadabilityFilters(max_repetition=0.0)) is None


def test_tiny_model_style_passes():
    tiny = "<think>\nStep by step:\na: 0+7=7\nb: 7-3=4\nc: 4+5=9\n</think>\n<answer>\n9\n</answer>"
    assert first_failure(tiny, ReadabilityFilters()) is None


def test_conversational_completion_and_names_are_stable():
    assert first_failure([{"role": "assistant", "content": r1(ENGLISH)}], ReadabilityFilters()) is None
    assert FILTER_NAMES == ("format", "paragraph", "code_block", "repetition", "language_mixing")


@pytest.mark.parametrize(
    "kwargs",
    [{"max_paragraph_chars": 0}, {"max_repetition": 1.5}, {"max_language_mixing": -0.1}, {"language": "xx"},
     {"repetition_ngram": 0}, {"format_style": "nope"}],
)
def test_bad_config_rejected(kwargs):
    with pytest.raises(ValueError):
        ReadabilityFilters(**kwargs)
