"""Every prompt template and phrase list of the project, as data in one place.

The policy's instruction (data loader, evaluation), the judges' prompts (judge services) and the
caption reward's keyword lists (rewards) are all read from here, so a change to a prompt is one edit
and every user of it sees the same text.
"""
from __future__ import annotations

from typing import Final

# --- Policy prompt (SPEC.md, Prompt): question, then the think/answer instruction. --------------
THINK_ANSWER_INSTRUCTION: Final = (
    "Please think about this question as if you were a human pondering deeply. "
    "Output the thinking process in <think> </think> and the final answer in <answer> </answer> tags, "
    "i.e., <think> reasoning process here </think><answer> answer here </answer>."
)
DIRECT_ANSWER_INSTRUCTION: Final = (
    "Give only the final answer inside <answer> </answer> tags."
)
# Placed after the question of multiple-choice rows so the answer is an option letter.
MCQA_SUFFIX: Final = "Answer with the option's letter from the given choices."

# --- Caption reward keyword term (SPEC.md): case-insensitive substring matches in the answer. ---
TEMPORAL_PHRASES: Final[tuple[str, ...]] = (
    "start with", "starts with", "then", "next", "after", "begin with", "begins with",
    "followed by", "following", "subsequently", "thereafter", "later", "initially", "first",
    "second", "third", "begin to", "begins to", "finally", "lastly", "to begin with",
    "as a starting point", "in the beginning", "at the outset", "once", "when", "whenever",
    "meanwhile", "simultaneously",
)
HEDGE_PHRASES: Final[tuple[str, ...]] = (
    "possibly", "suggesting", "likely", "appears to", "appearing", "designed to", "seems to",
    "might", "may", "could", "potentially", "presumably", "probably", "perhaps", "allegedly",
    "reportedly", "supposedly", "apparently", "arguably", "tentatively", "hypothetically",
    "theoretically", "in theory", "in some cases", "occasionally", "sometimes", "rarely",
    "unclear", "ambiguous", "vague", "speculative", "indicative of", "hinting at", "implying",
    "inferring", "open to interpretation", "subject to change", "not necessarily",
)
TEMPORAL_BONUS: Final = 0.2
HEDGE_PENALTY: Final = 0.2
KEYWORD_CAP: Final = 0.4

# --- Judge prompts: added by the judge services (DarkEventInfer rubric, MixVidQA, AutoDQ). ------
