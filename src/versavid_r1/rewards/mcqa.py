"""Multiple-choice (MCQA) reward: 1.0 or 0.0.

Both the completion and the solution are reduced to their answer text: the text inside the first
`<answer>` (closing tag optional) or, when there is no `<answer>` tag at all, the whole stripped
text (solutions are often stored as a bare "B"). The answer text is then judged in this order:

1. **Two letters → 0.** An answer that names two or more *different* option letters gets 0.0: an
   answer hedging between options must not get credit (a group of 8 samples would otherwise learn
   to list several letters). Letters are counted in these places only, so that ordinary words
   ("A man opens the door") are not read as options:
   - the leading option form (below), and a list directly after it joined by `,` `;` `/` `&` `or`
     `and` `vs` `nor`, optionally with a hedge word ("B or C", "B, C", "B; C", "(B)/(C)", "B or C?",
     "B or maybe A", "either B or C"); after such a joiner a capital letter counts even when a word
     follows it ("C and B are both possible");
   - every `\\boxed{X}` and every parenthesised, bracketed or braced capital `(X)`, `[X]`, `{X}`;
   - every line that starts like an option, `X.` or `X)` ("B. …\\nC. …");
   - anywhere, a capital letter after "or", "vs", "versus" or "nor" ("B (or possibly C)"), or one
     declared possible ("C is also possible", "D could be right"; "A is not correct" does not count).
2. **Both name one letter → compare the letters** (case-insensitive). The ground truth's letter is
   its first character when that is A–G followed by a delimiter or the end, as in the reference.
3. **Otherwise symbolic equality** with math-verify (`parse` / `verify`), e.g. "0.5" vs
   "\\frac{1}{2}" or "3" vs "3.0"; then a normalised text equality (case, whitespace and a trailing
   period ignored). Math-verify only decides when the letters cannot: on "A. 3 dogs" vs "B. 3
   people" it says "equal" (both parse to 3), which would pay a wrong option.

Leading option forms (A–G; the letter may follow "answer is", "Answer:", "option", "choice", …):
bare `B`, `B.`, `B)`, `B:`, `B,`, `(B)`, `[B]`, `{B}`, `\\boxed{B}`, `B. text`, and lower case
`b`, `b.`, `b. text`, `(b)`, `\\boxed{b}`. A letter directly followed by a space and a word (the
article in "A man …") is not an option form.

Math-verify is guarded: it never raises here, and it is run without its signal-based timeouts
(signal.alarm only works in the main thread, and TRL calls async rewards from a daemon thread):
inputs that could make sympy run unboundedly (long text, powers, factorials, sums, products,
integrals, limits, binomials, numbers of more than 30 digits) are not sent to it, and every call
runs in a daemon worker with a time limit; a call past the limit counts as "not equal".
"""
from __future__ import annotations

import logging
import queue
import re
import threading
from typing import Any, Callable, Optional

from versavid_r1.rewards.format import answer_text

logger = logging.getLogger(__name__)

OPTION_LETTERS = "ABCDEFG"
MATH_VERIFY_MAX_CHARS = 64
MATH_VERIFY_TIME_LIMIT_S = 2.0

_L = "A-Ga-g"
# Preambles before the letter: "The answer is", "Answer:", "Final answer: option", "Choice", …
_PREAMBLE = re.compile(
    r"^(?:(?:the\s+)?(?:correct\s+|final\s+|best\s+|right\s+)?(?:answer|option|choice)"
    r"(?:\s+is)?\s*[:：]?\s*(?:option\s+|choice\s+)?)?(?:(?:either|between)\s+)?",
    re.IGNORECASE,
)
# One option form at the start of a string; group "l" is the letter. Wrapped forms first.
_FORM = re.compile(
    rf"\\boxed\{{\s*\(?(?P<b>[{_L}])\)?\s*\}}"
    rf"|\\text\{{\s*(?P<t>[{_L}])\s*\}}"
    rf"|\((?P<p>[{_L}])\)|\[(?P<s>[{_L}])\]|\{{(?P<c>[{_L}])\}}"
    rf"|(?P<l>[{_L}])(?=[.):：,;/&?!]|\s*$|\s+(?:or|and|vs|versus|nor)\b)",
)
# After a list joiner, a capital letter is an option even when a word follows ("C and B are both ...").
_LISTED_CAPITAL = re.compile(r"(?P<u>[A-G])\b(?![-'’])")
_JOINER = r"(?:and/or|or|and|vs\.?|versus|nor)\b"
_HEDGE_WORDS = r"(?:(?:maybe|perhaps|possibly|probably|even|also|else|option|choice)\s+)*"
_LIST_SEP = re.compile(
    rf"\s*\(?\s*(?:[,;/&]\s*(?:{_JOINER}\s*)?|{_JOINER}\s*){_HEDGE_WORDS}", re.IGNORECASE
)
# Anywhere in the answer: a capital letter offered as an alternative, or declared possible.
_ALTERNATIVE = re.compile(rf"\b(?:or|vs\.?|versus|nor)\s+{_HEDGE_WORDS}\(?([A-G])\b(?![-'’])")
_DECLARED_POSSIBLE = re.compile(
    r"\b([A-G])\s+(?:is|are|seems|could|might|may|would)\s+(?!not\b|never\b|incorrect\b|wrong\b)"
    r"(?:\w+\s+){0,2}?(?:possible|correct|right|plausible|likely|valid|true|an?\s+option|the\s+answer)\b"
)
_BOXED_ANY = re.compile(rf"\\boxed\{{\s*\(?([{_L}])\)?\s*\}}")
_WRAPPED_ANY = re.compile(r"[(\[{]\s*([A-G])\s*[)\]}]")
_LINE_OPTION = re.compile(r"(?m)^[ \t]*([A-G])[.)](?=[ \t]|$)")
_STRIP_CHARS = " \t\r\n*`'\"$"


def _form_letter(m: "re.Match[str]") -> str:
    for g in ("b", "t", "p", "s", "c", "l", "u"):
        if g in m.re.groupindex and m.group(g):
            return m.group(g).upper()
    return ""  # pragma: no cover - the pattern always captures one group


def leading_letters(answer: str) -> list[str]:
    """Letters of the option form at the start of `answer` and of a list directly after it."""
    s = answer.strip(_STRIP_CHARS)
    pre = _PREAMBLE.match(s)
    if pre:
        s = s[pre.end():]
    s = s.lstrip(_STRIP_CHARS)
    letters: list[str] = []
    m = _FORM.match(s)
    while m:
        letters.append(_form_letter(m))
        rest = s[m.end():]
        # Skip the delimiter of a form like "B." / "B)" before looking for a list separator.
        delim = re.match(r"[.):：?!]*", rest).group(0)
        rest = rest[len(delim):]
        sep = _LIST_SEP.match(rest)
        if (not sep or sep.end() == 0) and "?" in delim:
            sep = re.match(r"\s+", rest)  # "B? C?": questioned letters in a row
        if not sep or sep.end() == 0:
            break
        s = rest[sep.end():].lstrip(_STRIP_CHARS)
        m = _FORM.match(s) or _LISTED_CAPITAL.match(s)
    return letters


def option_letters(answer: str) -> set[str]:
    """Every option letter an answer names (see the module docstring for where they are looked for)."""
    if not isinstance(answer, str) or not answer.strip():
        return set()
    found = set(leading_letters(answer))
    found.update(x.upper() for x in _BOXED_ANY.findall(answer))
    found.update(_WRAPPED_ANY.findall(answer))
    found.update(_LINE_OPTION.findall(answer))
    found.update(_ALTERNATIVE.findall(answer))
    found.update(_DECLARED_POSSIBLE.findall(answer))
    return found


def ground_truth_letter(solution: str) -> Optional[str]:
    """The ground truth's option letter: its first character if that is an option form, else None."""
    letters = leading_letters(answer_text(solution))
    return letters[0] if letters else None


# --- math-verify, guarded ------------------------------------------------------------------------
_RISKY = re.compile(r"\^|\*\*|!|\\(?:sum|prod|int|lim|binom|choose|infty)|\d{31,}|E\d|e\d")


def _math_verify_safe(text: str) -> bool:
    return 0 < len(text) <= MATH_VERIFY_MAX_CHARS and _RISKY.search(text) is None


class _DaemonWorker:
    """Runs one callable at a time in a daemon thread with a time limit.

    A call past its limit is abandoned (the thread cannot be killed); a fresh worker takes over.
    After `max_abandoned` stuck workers the worker refuses further jobs (math-verify is then off).
    """

    def __init__(self, max_abandoned: int = 4) -> None:
        self._lock = threading.Lock()
        self._jobs: "queue.Queue[tuple[Callable[[], Any], queue.Queue]] | None" = None
        self._abandoned = 0
        self._max_abandoned = max_abandoned

    def _start(self) -> "queue.Queue":
        jobs: queue.Queue = queue.Queue()

        def loop() -> None:
            while True:
                fn, out = jobs.get()
                try:
                    out.put((True, fn()))
                except BaseException as exc:  # noqa: BLE001 - reported to the caller
                    out.put((False, exc))

        threading.Thread(target=loop, name="versavid-math-verify", daemon=True).start()
        return jobs

    def run(self, fn: Callable[[], Any], timeout: float) -> tuple[bool, Any]:
        """(finished, value); value is the result or the exception it raised."""
        with self._lock:  # one job at a time: a stuck job must not be queued behind
            if self._abandoned >= self._max_abandoned:
                return False, None
            if self._jobs is None:
                self._jobs = self._start()
            out: queue.Queue = queue.Queue(maxsize=1)
            self._jobs.put((fn, out))
            try:
                ok, value = out.get(timeout=timeout)
            except queue.Empty:
                self._abandoned += 1
                self._jobs = None
                logger.warning(
                    "math-verify took more than %.1f s and was abandoned (%d/%d); the answer counts as "
                    "not equal", timeout, self._abandoned, self._max_abandoned,
                )
                return False, None
            if not ok:
                return False, value
            return True, value


_WORKER = _DaemonWorker()


def _mv_compare(gold: str, pred: str) -> bool:
    import math_verify  # local: importing sympy costs ~0.3 s, only MCQA rows need it

    g = math_verify.parse(gold, parsing_timeout=None)
    if not g:
        return False
    p = math_verify.parse(pred, parsing_timeout=None)
    if not p:
        return False
    return bool(math_verify.verify(g, p, timeout_seconds=None))


def _silence_math_verify_warning() -> None:
    # math-verify warns once that its timeouts are off; our own limit replaces them.
    try:
        import math_verify.grader as _g
        import math_verify.parser as _p

        _g.TIMEOUT_WARNING_SHOWN = True
        _p.TIMEOUT_WARNING_SHOWN = True
    except Exception:  # noqa: BLE001 - cosmetic only
        pass


def symbolic_equal(gold: str, pred: str, time_limit: float = MATH_VERIFY_TIME_LIMIT_S) -> bool:
    """math-verify equality of two short answer texts; False on anything unsafe, failing or slow."""
    if not (isinstance(gold, str) and isinstance(pred, str)):
        return False
    if not (_math_verify_safe(gold) and _math_verify_safe(pred)):
        return False
    _silence_math_verify_warning()
    finished, value = _WORKER.run(lambda: _mv_compare(gold, pred), time_limit)
    return bool(finished and value is True)


def _normalise(text: str) -> str:
    return " ".join(text.strip(_STRIP_CHARS).rstrip(".").split()).lower()


def multiple_choice_reward(completion: Any, solution: Any) -> float:
    """1.0 if the completion's answer is the ground truth option, else 0.0 (see module docstring)."""
    try:
        pred = answer_text(completion)
        gold = answer_text(solution)
        if not pred or not gold:
            return 0.0
        pred_letters = option_letters(pred)
        if len(pred_letters) > 1:
            return 0.0
        gold_letter = ground_truth_letter(gold)
        if gold_letter is not None and pred_letters:
            return 1.0 if pred_letters == {gold_letter} else 0.0
        if symbolic_equal(gold, pred):
            return 1.0
        if gold_letter is None and not pred_letters and _normalise(pred) == _normalise(gold):
            return 1.0
        return 0.0
    except Exception:  # noqa: BLE001 - a reward must never raise on model output
        logger.debug("multiple_choice_reward failed", exc_info=True)
        return 0.0
