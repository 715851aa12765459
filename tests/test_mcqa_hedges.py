"""MCQA: an answer that names more than one option scores 0, in any wording (issue 20, item 1).

Three checks: a hypothesis property over generated hedges (leading text, option forms, connectives,
parentheses, trailing text, lower case and look-alike letters, the right option in either position), every
example of docs/rewards.md (the list between its `mcqa-hedges` markers) with each of its letters as the
ground truth, and the nested `<answer>` that `format_mode: prefix` lets through.
"""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from versavid_r1.rewards import RewardConfig, format_ok, multiple_choice_reward, score_rows

DOCS = Path(__file__).resolve().parents[1] / "docs" / "rewards.md"
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LEADS = ["", "Maybe ", "I think it is ", "The answer is ", "Probably ", "Either ", "It could be ", "Answer: ",
         "My guess: ", "Hmm, "]
FORMS = ["{}", "{}.", "({})", "[{}]", "{{{}}}", "\\boxed{{{}}}", "**{}**", "option {}", "{})", "'{}'"]
JOINS = [" or ", ", ", "/", " and ", " vs ", " versus ", "; ", " or maybe ", " or possibly ", " (or ",
         " (or possibly ", ", though ", ", but maybe ", ", perhaps ", " nor ", "\n", " - no wait, ", " & ",
         " and/or ", " or else ", ", or even "]
TAILS = ["", ")", "?", ".", " is also possible", " could also be right", " are both plausible", " fit"]
# Cyrillic letters that look like Latin option letters
LOOKALIKE = {"A": "А", "B": "В", "C": "С", "E": "Е"}


def good(answer: str) -> str:
    return f"<think>I watch the video.</think><answer>{answer}</answer>"


@st.composite
def hedges(draw):
    """(answer text, its two letters) of a hedge between two different options."""
    first, second = draw(st.permutations("ABCDEFG").map(lambda p: p[:2]))
    lower = draw(st.booleans())
    lookalike = draw(st.booleans())
    shown = []
    for letter in (first, second):
        text = letter.lower() if lower else letter
        if lookalike and not lower and letter in LOOKALIKE and letter == second:
            text = LOOKALIKE[letter]
        shown.append(text)
    join, second_form, tail = draw(st.sampled_from(JOINS)), draw(st.sampled_from(FORMS)), draw(st.sampled_from(TAILS))
    # "a" followed by a word is the article when nothing offers it as an option: "b or a fit" reads "or a
    # fit", a line "A fit" after "B" is a sentence. Not hedges.
    article = shown[1] in "aA" and second_form in ("{}", "option {}") and tail[:2].strip().isalpha()
    assume(not (article and (shown[1] == "a" or join == "\n")))
    answer = (draw(st.sampled_from(LEADS)) + draw(st.sampled_from(FORMS)).format(shown[0])
              + join + second_form.format(shown[1]) + tail)
    return answer, (first, second)


@PROPS
@given(hedges())
def test_a_hedge_between_two_options_never_pays(hedge):
    answer, letters = hedge
    for gold in letters:  # the right option in the first and in the second position
        for solution in (gold, f"<answer>{gold}</answer>", f"{gold}. the option's text"):
            assert multiple_choice_reward(good(answer), solution) == 0.0, (answer, solution)


@PROPS
@given(st.sampled_from("ABCDEFG"), st.sampled_from(LEADS), st.sampled_from(FORMS), st.booleans())
def test_one_option_in_the_same_wordings_pays(gold, lead, form, lower):
    answer = lead + form.format(gold.lower() if lower else gold)
    assert multiple_choice_reward(good(answer), gold) == 1.0, answer
    other = "B" if gold != "B" else "C"
    assert multiple_choice_reward(good(answer), other) == 0.0, answer


def _doc_examples(marker: str) -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(rf"<!-- {marker} -->(.*?)<!-- /{marker} -->", text, re.DOTALL)
    assert block, f"docs/rewards.md has no {marker} list"
    return [ex.replace("\\n", "\n") for ex in re.findall(r"`([^`]+)`", block.group(1))]


def _letters_written(example: str) -> list[str]:
    """The letters a reader sees in a doc example (an oracle independent of the reward's scan)."""
    found = re.findall(r"(?<!\w)[A-Ga-gВ](?!\w)", example.replace("\\boxed", " "))
    return sorted({"B" if x == "В" else x.upper() for x in found})


HEDGE_EXAMPLES = _doc_examples("mcqa-hedges")
SINGLE_EXAMPLES = _doc_examples("mcqa-single")


def test_the_docs_list_enough_examples():
    assert len(HEDGE_EXAMPLES) >= 25 and len(SINGLE_EXAMPLES) >= 6
    assert all(len(_letters_written(ex)) >= 2 for ex in HEDGE_EXAMPLES), HEDGE_EXAMPLES


@pytest.mark.parametrize("example", HEDGE_EXAMPLES)
def test_every_doc_hedge_scores_zero_with_the_gold_in_each_position(example):
    for gold in _letters_written(example):
        assert multiple_choice_reward(good(example), gold) == 0.0, (example, gold)
        assert multiple_choice_reward(good(example), f"<answer>{gold}. text</answer>") == 0.0, (example, gold)


@pytest.mark.parametrize("example", SINGLE_EXAMPLES)
def test_every_doc_single_answer_pays(example):
    gold = re.search(r"(?<!\w)[A-Ga-g](?!\w)", example).group(0).upper()  # the first letter: the answer's
    assert multiple_choice_reward(good(example), gold) == 1.0, example
    wrong = "C" if gold != "C" else "D"
    assert multiple_choice_reward(good(example), wrong) == 0.0, example


@pytest.mark.parametrize("gold", ["B", "C"])
def test_prefix_mode_a_nested_answer_tag_cannot_pay_a_second_letter(gold):
    # The prefix gate tolerates a stray <answer> inside the first answer block; the answer then reads
    # "B <answer>C", which names two options whichever is right.
    for completion in ("<think>x</think><answer>B or <answer>C</answer>", "<think>x</think><answer>C, <answer>B</answer>",
                       "<think>x</think><answer>B <answer>C</answer>", "<think>x</think><answer>B</think>C</answer>"):
        assert format_ok(completion, "prefix") and not format_ok(completion, "strict")
        rows = asyncio.run(score_rows([completion], [gold], ["MCQA"], [""], RewardConfig(format_mode="prefix"),
                                      client=None))
        assert rows[0].reward == 0.0, (completion, gold)
