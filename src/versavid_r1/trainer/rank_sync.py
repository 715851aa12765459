"""Cross-rank agreement for the steps where one process must not go its own way.

Why: with several training processes, every rank runs the same collectives in the same order (DDP
all-reduces, and under ZeRO-3 each forward gathers parameters collectively). Two things break that:

- an exception on ONE rank while it loads or builds its video batch: that rank dies, the others block in
  the next collective until the NCCL/gloo timeout (30 min by default) and then report a timeout, not the
  cause. `raise_if_any_rank_failed` makes every rank raise, at once, with the failing rank's message.
- a per-rank choice of generation path (shared prefill or TRL's path): under ZeRO-3 the two paths run a
  different number of forwards. `all_ranks_agree` turns a local yes/no into the same answer everywhere.

Both are no-ops (no collective) in a single process. Callers must reach them on every rank, in the same
order. Row-level skipping of unreadable videos (a skip budget) belongs BEFORE `raise_if_any_rank_failed`:
only errors that stay fatal are exchanged here.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
log = logging.getLogger(__name__)


class RankFailure(RuntimeError):
    """Another rank failed; raised on the ranks that did not fail themselves, naming the rank and its error."""


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def describe(exc: BaseException) -> str:
    """One line for the other ranks' error message: the exception type and text."""
    return f"{type(exc).__name__}: {exc}"


def raise_if_any_rank_failed(error: Optional[BaseException], what: str) -> None:
    """Collective: every rank passes its own exception (or None); if any rank had one, every rank raises.

    The failing rank re-raises its own exception (traceback kept); the others raise `RankFailure` with the
    failing rank(s)' messages, so every process's log says what happened and the job stops together.
    """
    world = _world()
    if world == 1:
        if error is not None:
            raise error
        return
    messages: list[Optional[str]] = [None] * world
    dist.all_gather_object(messages, None if error is None else describe(error))
    failed = [(rank, msg) for rank, msg in enumerate(messages) if msg is not None]
    if not failed:
        return
    if error is not None:
        raise error
    detail = "; ".join(f"rank {rank}: {msg}" for rank, msg in failed)
    message = f"{what} failed on another process ({detail}); stopping every process"
    log.error(message)  # at once: a launcher may stop this process as soon as the failing rank exits
    raise RankFailure(message)


def all_ranks_agree(flag: bool) -> bool:
    """Collective: True only if `flag` is True on every rank (a logical AND over processes)."""
    if _world() == 1:
        return bool(flag)
    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def fail_together(fn: Callable[[], T], what: str) -> T:
    """Collective: run `fn()` on this rank, then `raise_if_any_rank_failed`; return its result when all succeeded.

    A collective inside `fn` must come before anything in `fn` that can fail on one rank only: a rank that
    failed earlier would meet the others' collective with this one's. (The trainer's row guard shares row
    failures in its own all-gather, and catches them, so a row that fails on one rank does not stop the run.)"""
    try:
        result, error = fn(), None
    except Exception as exc:  # noqa: BLE001  (any error is fatal here; it is re-raised below on every rank)
        result, error = None, exc
    raise_if_any_rank_failed(error, what)
    return result  # type: ignore[return-value]
