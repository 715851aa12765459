"""The policy prompt options shared by training and evaluation (`policy_prompt`, `prompt_instruction`,
`mcqa_suffix`): the two presets against the template descriptions in docs/deviations.md, overrides, and
errors. That a training run and an evaluation really use them is tested in test_run_outputs.py."""
from __future__ import annotations

import re

import pytest

from versavid_r1 import prompts
from versavid_r1.data import make_conversation, resolve_policy_prompt
from versavid_r1.eval import parse_eval_args

MCQA_ROW = {"problem": "Which colour?\nOptions:\nA. red\nB. blue", "solution": "<answer>A</answer>",
            "problem_type": "MCQA", "video": "/videos/a.mp4"}


def text_of(row, prompt) -> str:
    return make_conversation(row, prompt=prompt)[0]["content"][1]["text"]


def test_authors_preset_is_question_newline_one_tag_sentence():
    text = text_of(MCQA_ROW, resolve_policy_prompt("authors"))
    question, instruction = text.rsplit("\n", 1)
    assert question == MCQA_ROW["problem"]  # no option-letter line
    assert len(re.findall(r"[.!?](?:\s|$)", instruction)) == 1, "one sentence"
    assert "<think> </think>" in instruction and "<answer> </answer>" in instruction
    assert re.search(r"<think>[^<]+</think><answer>[^<]+</answer>", instruction), "an inline example of both tags"


def test_project_preset_adds_one_sentence_and_the_option_letter_line():
    text = text_of(MCQA_ROW, resolve_policy_prompt("project"))
    assert text == f"{MCQA_ROW['problem']}\n{prompts.MCQA_SUFFIX}\n{prompts.THINK_ANSWER_INSTRUCTION}"
    extra = prompts.THINK_ANSWER_INSTRUCTION.removesuffix(prompts.TAG_INSTRUCTION)
    assert extra.strip() == "Please think about this question as if you were a human pondering deeply."
    assert text_of(MCQA_ROW, None) == text, "the default is the project preset"


def test_overrides_and_errors():
    custom = resolve_policy_prompt("authors", "Answer briefly.", True)
    assert text_of(MCQA_ROW, custom) == f"{MCQA_ROW['problem']}\n{prompts.MCQA_SUFFIX}\nAnswer briefly."
    with pytest.raises(ValueError, match="prompt_instruction is empty"):
        resolve_policy_prompt("project", "  ")
    with pytest.raises(ValueError, match="policy_prompt must be one of"):
        resolve_policy_prompt("paper")
    with pytest.raises(SystemExit):  # the flag only takes a preset name
        parse_eval_args(["--policy_prompt", "paper"])
    # the resolved text is part of an evaluation's fingerprint: resuming with another prompt is refused
    a, b = parse_eval_args([]), parse_eval_args(["--policy_prompt", "authors"])
    assert a.fingerprint()["prompt"]["instruction"] == prompts.THINK_ANSWER_INSTRUCTION
    assert b.fingerprint()["prompt"] == {"preset": "authors", "instruction": prompts.AUTHORS_INSTRUCTION,
                                         "mcqa_suffix": False, "strip_question": False}


# The authors' question template, typed from their training code (issue 20, item 5): the question as stored,
# a newline, their sentence with its trailing space.
AUTHORS_TEMPLATE = ("{Question}\nOutput the thinking process in <think> </think> and final answer in <answer> "
                    "</answer> tags, i.e., <think> reasoning process here </think><answer> answer here </answer>. ")


@pytest.mark.parametrize("problem", [MCQA_ROW["problem"], "  What happens next? \n", "Describe the video."])
def test_authors_preset_reproduces_the_authors_prompt_byte_for_byte(problem):
    row = {**MCQA_ROW, "problem": problem}
    assert text_of(row, resolve_policy_prompt("authors")) == AUTHORS_TEMPLATE.format(Question=problem)
    # the same text through prompt_instruction: the instruction is used as given, whitespace included
    own = resolve_policy_prompt("authors", AUTHORS_TEMPLATE.split("\n", 1)[1])
    assert text_of(row, own) == AUTHORS_TEMPLATE.format(Question=problem)


def test_authors_preset_renders_the_authors_chat_text(tiny_dirs):
    # Their messages: one user turn, the video then the text, no system message (the chat template adds
    # Qwen's default system line).
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_dirs["qwen2_5_vl"])
    messages = make_conversation(MCQA_ROW, prompt=resolve_policy_prompt("authors"))
    rendered = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                        "<|vision_start|><|video_pad|><|vision_end|>" + AUTHORS_TEMPLATE.format(Question=MCQA_ROW["problem"])
                        + "<|im_end|>\n<|im_start|>assistant\n")
