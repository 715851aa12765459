"""The benchmarks' answer rules (eval/benchmarks/extract.py) on replies whose reading by the benchmark's own
code was worked out by hand from that code, including its quirks (a capital letter inside a word counts for
Video-MME; "Answer: D" reads as A for Video-Holmes)."""
from __future__ import annotations

import pytest

from versavid_r1.eval.benchmarks.extract import (
    fallback_letter,
    first_letter_after_prefixes,
    holmes_letter,
    mmmu_letter,
    mvbench_match,
)


@pytest.mark.parametrize("reply, letter", [
    ("The answer is (C).", "C"),                 # the phrase is removed, then the first capital A-D
    ("C", "C"),
    ("(B) Two.", "B"),
    ("Best answer: D", "D"),                     # "Best answer:" is removed before "B" of "Best" could count
    ("Clearly A.", "C"),                         # the rule's literal reading: the C of "Clearly" comes first
    ("the option e", None),                      # no capital A-D at all
    ("one two three four five six seven eight nine ten eleven", None),  # > 10 words, no letter
    ("", None),
])
def test_videomme_rule(reply, letter):
    assert first_letter_after_prefixes(reply, "ABCD") == letter


def test_longvideobench_rule_reads_e_and_falls_back_deterministically():
    assert first_letter_after_prefixes("The correct answer is E", "ABCDE") == "E"
    assert first_letter_after_prefixes("The correct answer is E", "ABCD") is None  # Video-MME stops at D
    picks = {fallback_letter(f"q{k}", 4) for k in range(40)}
    assert picks <= set("ABCD") and len(picks) > 1           # spread over the options ...
    assert fallback_letter("q7", 5) == fallback_letter("q7", 5)  # ... and the same on every run


@pytest.mark.parametrize("reply, letter", [
    ("(B)", "B"),
    ("I think (A) but finally (C)", "C"),         # bracketed candidates: the last one wins
    ("B", "B"),
    ("A or D", "D"),                               # "X " candidates: the later " X " wins
    ("C.", "C"),                                   # the trailing period is stripped, then "C " matches
    ("the man would strum the string with his fingers", "C"),  # > 5 words: an option's text
    ("strum", None),                               # too short for the text match
    ("", None),
])
def test_mmmu_rule(reply, letter):
    options = ["roll the handle", "tap their feet", "strum the string", "hit with sticks", "pat with hand"]
    assert mmmu_letter(reply, options) == letter


@pytest.mark.parametrize("completion, letter", [
    ("<think>A or B?</think><answer>B: the man</answer>", "B"),   # the answer block, not the thinking
    ("<answer>first</answer> then <answer>[E]</answer>", "E"),     # the last block
    ("<answer>Answer: D</answer>", "A"),                           # no "D " form; then the A of "Answer"
    ("F", "F"),                                                    # no tags: the whole reply
    ("<answer>none</answer>", None),
])
def test_video_holmes_rule(completion, letter):
    assert holmes_letter(completion) == letter


@pytest.mark.parametrize("answer, right", [
    ("B", True), ("(B)", True), ("b. sits", True), ("B.", True), ("C", False), ("Answer: B", False), ("", False),
])
def test_mvbench_rule(answer, right):
    assert mvbench_match(answer, "B") is right
