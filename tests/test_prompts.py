"""Templates and tag parsing."""

from __future__ import annotations

import time

import pytest

from r1cli.prompts import (
    R1_INSTRUCTION,
    R1_ZERO_TEMPLATE,
    all_boxed,
    build_prompt,
    completion_text,
    extract_answer_tag,
    extract_final_answer,
    extract_think,
    last_boxed,
    split_reasoning,
)


def test_r1_zero_template_is_the_papers_table_1():
    assert R1_ZERO_TEMPLATE.startswith("A conversation between User and Assistant. The user asks a question")
    assert "<think> reasoning process here </think> <answer> answer here </answer>" in R1_ZERO_TEMPLATE
    assert R1_ZERO_TEMPLATE.endswith("User: {prompt}. Assistant:")
    text = build_prompt("What is 2+2?", "r1-zero")
    assert text.endswith("User: What is 2+2?. Assistant:")


def test_plain_and_chat_templates():
    assert build_prompt("Q", "plain", instruction=None) == "Q"
    assert build_prompt("Q", "plain") == "Q\n\n" + R1_INSTRUCTION

    class Tok:
        chat_template = "x"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert not tokenize and add_generation_prompt
            return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    assert build_prompt("Q", "chat", Tok(), instruction=None) == "<user>Q<assistant>"
    assert build_prompt("Q", "chat", Tok(), think_prefix=True).endswith("<assistant><think>\n")
    assert build_prompt("Q", "chat", Tok(), system="S", instruction=None).startswith("<system>S")
    with pytest.raises(ValueError, match="chat template"):
        build_prompt("Q", "chat", None)


def test_tags():
    c = "<think>\nstep 1\n</think>\n<answer>\n42\n</answer>"
    assert extract_think(c) == "\nstep 1\n"
    assert extract_answer_tag(c) == "42"
    assert extract_final_answer(c) == "42"
    assert split_reasoning(c) == ("<think>\nstep 1\n</think>", "\n<answer>\n42\n</answer>")
    # prefilled <think>: the completion starts inside the reasoning
    assert extract_think("reasoning</think> The answer is \\boxed{7}.") == "reasoning"
    assert extract_final_answer("reasoning</think> The answer is \\boxed{7}.") == "7"
    # an answer only inside the think block does not count
    assert extract_final_answer("<think>maybe \\boxed{3}</think> I am not sure.") is None
    assert extract_final_answer("no tags, just \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_final_answer("") is None
    assert extract_answer_tag("<answer>1</answer><think>x</think>") is None


def test_boxed_parsing():
    assert last_boxed("a \\boxed{1} b \\boxed{\\frac{a}{b}} c") == "\\frac{a}{b}"
    assert last_boxed("\\boxed 5") == "5"
    assert last_boxed("\\fbox{9}") == "9"
    assert last_boxed("\\boxed{unbalanced") is None
    assert last_boxed("\\boxed{1} then \\boxed{unbalanced") == "1"
    assert all_boxed("\\boxed{1} or \\boxed{2}") == ["1", "2"]


def test_parsers_are_linear_on_adversarial_input():
    t = time.perf_counter()
    extract_final_answer("x" * 1_000_000)
    extract_final_answer("{" * 10_000 + "\\boxed{" + "{" * 10_000)
    all_boxed("\\boxed{1}" * 5000)
    extract_final_answer("<think>" * 50_000)
    last_boxed("\\boxed{" * 20_000)  # unbalanced boxes: linear, not quadratic
    all_boxed("\\boxed{" * 20_000 + "}" * 5)
    assert time.perf_counter() - t < 1.0


def test_completion_text_conversational():
    assert completion_text([{"role": "assistant", "content": "hi"}]) == "hi"
    assert completion_text("x") == "x"
    assert completion_text(None) == ""
