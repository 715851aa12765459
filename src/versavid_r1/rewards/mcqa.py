"""Multiple-choice (MCQA) reward: 1.0 or 0.0.

Both the completion and the solution are reduced to their answer text: the text inside the first
`<answer>` (closing tag optional) or, when there is no `<answer>` tag at all, the whole stripped
text (solutions are often stored as a bare "B"). The answer text is then judged in this order:

1. **More than one letter → 0.** An answer that names two or more *different* option letters, in any
   wording, gets 0.0: an answer hedging between options must not get credit (a group of 8 samples would
   otherwise learn to list several letters). Which letters an answer names: `versavid_r1.rewards.options`
   (every lone letter A–G, wherever it stands; "A" followed by a word is the article).
2. **Both name one letter → compare the letters** (case-insensitive). The ground truth's letter is
   its first character when that is an option form, as in the reference.
3. **Otherwise symbolic equality** with math-verify (`parse` / `verify`), e.g. "0.5" vs
   "\\frac{1}{2}" or "3" vs "3.0"; then a normalised text equality (case, whitespace and a trailing
   period ignored). Math-verify only decides when the letters cannot: on "A. 3 dogs" vs "B. 3
   people" it says "equal" (both parse to 3), which would pay a wrong option.

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
from typing import Any, Callable

from versavid_r1.rewards.format import answer_text
from versavid_r1.rewards.options import OPTION_LETTERS, ground_truth_letter, option_letters

__all__ = ["OPTION_LETTERS", "multiple_choice_reward", "option_letters", "ground_truth_letter", "symbolic_equal"]

logger = logging.getLogger(__name__)

MATH_VERIFY_MAX_CHARS = 64
MATH_VERIFY_TIME_LIMIT_S = 2.0
_STRIP_CHARS = " \t\r\n*`'\"$"


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
