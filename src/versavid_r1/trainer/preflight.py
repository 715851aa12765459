"""Checks run before the model is loaded, each failing with a message that says what to do.

- `load_training_rows`: the data (every row validated, all problems listed at once, or skipped with
  `skip_invalid`).
- `check_judges`: every judge service that the data's problem types need answers `/health` (and accepts
  the run's key); a missing one is named with its URL, the rows that need it and the command that starts
  it. Each reports its request limits, against which `check_rows_for_judges` checks the judged rows.
- `check_launch`: option combinations that cannot work (vLLM server mode with video, ...).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence
from urllib.parse import urlparse

import httpx
import torch

from versavid_r1.protocol import (
    DEFAULT_CAPTION_JUDGE_PORT, DEFAULT_QWEN_JUDGE_PORT, HEALTH_PATH, PREDICT_BATCH_PATH, JudgeLimits,
)
from versavid_r1.judges.settings import API_KEY_ENV
from versavid_r1.tasks import CAPTION_JUDGE, JUDGE_OF_TYPE, QWEN_JUDGE

from .vllm_video import SERVER_MODE_MESSAGE

log = logging.getLogger(__name__)


class PreflightError(RuntimeError):
    """A check before training failed; the message says what is wrong and how to fix it."""


@contextlib.contextmanager
def exit_on_preflight_error(*also: type[BaseException]):
    """For the entry points: a `PreflightError` (an error the user can fix), or one of the `also` types,
    ends the program with its message and exit status 2 instead of a traceback; other errors propagate."""
    try:
        yield
    except (PreflightError, *also) as err:
        print(f"\nERROR: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


@dataclass(frozen=True)
class JudgeService:
    name: str  # tasks.QWEN_JUDGE / tasks.CAPTION_JUDGE
    title: str
    url: str
    flag: str  # the training flag that points at it

    def start_commands(self) -> list[str]:
        """Commands that start this service on the URL's port (paper setup first, then alternatives)."""
        port = urlparse(self.url).port
        if self.name == QWEN_JUDGE:
            port = port or DEFAULT_QWEN_JUDGE_PORT
            return [
                f"python src/qwen25_judge_service.py --model Qwen/Qwen2.5-72B-Instruct --backend vllm "
                f"--tensor-parallel-size 2 --port {port}",
                f"python src/qwen25_judge_service.py --model <tiny causal LM dir> --backend transformers "
                f"--device cpu --port {port}   (CPU demo)",
            ]
        port = port or DEFAULT_CAPTION_JUDGE_PORT
        return [
            f"OPENAI_API_KEY=... python src/gpt35_judge_service.py --model gpt-3.5-turbo-0125 --port {port}",
            f"python src/gpt35_judge_service.py --base-url http://127.0.0.1:{DEFAULT_QWEN_JUDGE_PORT}/v1 "
            f"--model <the Qwen judge's served model name> --port {port}   (local judge)",
        ]


def load_training_rows(
    path: Optional[str],
    video_config,
    skip_invalid: bool,
    what: str = "training",
    limits=None,
    decode: bool = True,
) -> list[dict]:
    """Validated rows of a JSONL (raises `PreflightError` for a missing path; the data module's
    `DataValidationError` lists every bad row with its line number).

    With `decode`, every row's video is loaded as training will load it. When several processes run
    (torch.distributed initialised), each decodes a share of the rows and the problems found are
    exchanged, so every process ends with the same rows for a fraction of the decoding time."""
    if not path:
        raise PreflightError(
            f"no {what} data: pass --data_path path/to/train.jsonl (make a demo set with "
            "`python scripts/make_demo_data.py`)"
        )
    from versavid_r1.data.schema import RowIssue, rows_of_report, validate_file

    rank, world = _rank_and_world()
    share = (rank, world) if decode and world > 1 else None
    report = validate_file(path, cfg=video_config, skip_invalid=skip_invalid, limits=limits, decode=decode,
                           decode_share=share)
    if share is not None:
        mine = {(e.line, e.field, e.message) for e in report.errors}
        everyone = [None] * world
        torch.distributed.all_gather_object(everyone, sorted(mine))
        found_elsewhere = [RowIssue(*t) for t in sorted({tuple(t) for part in everyone for t in part} - mine)]
        if skip_invalid:
            for issue in found_elsewhere:
                log.warning("skipping invalid row: %s", issue)
        report.add_errors(found_elsewhere)
    rows = rows_of_report(report, skip_invalid)
    if not rows:
        raise PreflightError(f"{path}: no valid rows left for {what}")
    log.info("%s data %s: %d rows (%s)", what, path, len(rows), summarize_types(rows))
    return rows


def load_training_data(script_args, training_args, video_config, **checks) -> tuple[list[dict], Optional[dict]]:
    """The training rows of a run (`data_path`, or the `data_mixture` of several sources) and, for a mixture,
    its report (rows drawn per source, logged here and recorded in versavid_run.json). `max_train_samples`
    keeps the first N rows (of the shuffled mixture). `checks` go to `load_training_rows` (limits, decode)."""
    report = None
    if script_args.data_mixture:
        from versavid_r1.data import DataValidationError
        from versavid_r1.data.mixture import build_mixture, parse_mixture

        sources = parse_mixture(script_args.data_mixture)
        if script_args.data_path and all(s.path for s in sources):
            log.info("data_path %s is not used: every data_mixture source names its own file", script_args.data_path)
        seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
        try:
            rows, mix = build_mixture(
                sources, lambda path: load_training_rows(path, video_config, script_args.skip_invalid, **checks),
                seed=seed, size=script_args.mixture_size, default_path=script_args.data_path,
            )
        except DataValidationError:
            raise
        except ValueError as err:  # a source without rows or without a path
            raise PreflightError(str(err)) from None
        report = mix.to_dict()
    else:
        rows = load_training_rows(script_args.data_path, video_config, script_args.skip_invalid, **checks)
    if script_args.max_train_samples:
        rows = rows[: script_args.max_train_samples]
    return rows, report


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _split_urls(urls: str | Sequence[str]) -> list[str]:
    items = urls.split(",") if isinstance(urls, str) else list(urls)
    return [u.strip().rstrip("/") for u in items if u and u.strip()]


def judges_needed(
    rows: Iterable[dict], qwen_url: str | Sequence[str], caption_url: str | Sequence[str]
) -> dict[JudgeService, Counter]:
    """The judge services (every replica URL) the rows' problem types need, with the rows per type."""
    services = {
        QWEN_JUDGE: [
            JudgeService(QWEN_JUDGE, "Qwen2.5 judge (DarkEventInfer, MixVidQA)", u, "qwen_judge_url")
            for u in _split_urls(qwen_url)
        ],
        CAPTION_JUDGE: [
            JudgeService(CAPTION_JUDGE, "AutoDQ caption judge (caption)", u, "caption_judge_url")
            for u in _split_urls(caption_url)
        ],
    }
    needed: dict[JudgeService, Counter] = {}
    for r in rows:
        ptype = str(r.get("problem_type"))
        judge = JUDGE_OF_TYPE.get(ptype)
        if judge is None:
            continue
        if not services[judge]:
            raise PreflightError(f"{ptype} rows need the {judge} judge but no URL is configured for it")
        for service in services[judge]:
            needed.setdefault(service, Counter())[ptype] += 1
    return needed


def probe_health(url: str, timeout: float = 5.0, headers: Optional[dict] = None) -> tuple[bool, str]:
    """(ready, detail) of one `GET {url}/health`."""
    ready, detail, _ = _health(url, timeout, headers)
    return ready, detail


def _health(url: str, timeout: float, headers: Optional[dict]) -> tuple[bool, str, Optional[dict]]:
    """(ready, detail, the /health body when there is one)."""
    target = url.rstrip("/") + HEALTH_PATH
    try:
        resp = httpx.get(target, timeout=timeout, headers=headers)
    except httpx.HTTPError as err:
        return False, f"unreachable ({type(err).__name__}: {err})", None
    if resp.status_code != 200:
        return False, f"GET {target} returned HTTP {resp.status_code}", None
    try:
        body = resp.json()
    except ValueError:
        return False, f"GET {target} did not return JSON", None
    if not isinstance(body, dict):
        return False, f"GET {target} did not return a JSON object", None
    if not body.get("ready", True) or body.get("status", "ok") != "ok":
        return False, f"not ready yet (status {body.get('status')!r}, ready {body.get('ready')!r})", body
    return True, f"ok (model {body.get('model', '?')!r}, backend {body.get('backend', '?')!r})", body


def _auth_problem(url: str, timeout: float, headers: dict) -> Optional[str]:
    """Why a scoring request with `headers` is refused (401/403: a missing or wrong key), else None. An empty
    batch is scored for free by both services."""
    try:
        resp = httpx.post(url.rstrip("/") + PREDICT_BATCH_PATH, json={"items": []}, timeout=timeout, headers=headers)
    except httpx.HTTPError as err:
        return f"unreachable ({type(err).__name__}: {err})"
    if resp.status_code in (401, 403):
        had = "its key was refused" if headers.get("Authorization") else "no key was sent"
        return (f"it requires an API key (HTTP {resp.status_code}; {had}): set the variable --judge_api_key_env "
                f"names (default ${API_KEY_ENV}) to the services' key")
    return None


def _strictest(seen: list[JudgeLimits]) -> JudgeLimits:
    """The limits every replica accepts (the smallest of each)."""
    def low(values):
        known = [v for v in values if v is not None]
        return min(known) if known else None

    return JudgeLimits(**{name: low([getattr(x, name) for x in seen]) for name in JudgeLimits.model_fields})


TRAINING_SKIP_HINT = (
    "--check_judges false skips this check; rows of judged types then fail or are skipped at reward time "
    "according to --on_judge_error."
)


def check_judges(
    needed: dict[JudgeService, Counter],
    ready_timeout: float = 300.0,
    poll_interval: float = 2.0,
    request_timeout: float = 5.0,
    what: str = "training",
    skip_hint: str = TRAINING_SKIP_HINT,
    auth_headers: Optional[dict] = None,
) -> dict[str, JudgeLimits]:
    """Fail with an actionable message unless every needed judge answers /health with ready; returns the
    request limits each judge reports (the strictest over its replicas; judges that report none are left out).

    An unreachable service fails at once (it is not running); a reachable one that is still loading its
    model is polled for up to `ready_timeout` seconds. With `auth_headers` (the headers scoring will send),
    an empty scoring request checks that the service accepts them (a missing key fails here, not after the
    model has loaded). `what` names the job that is not started (training, evaluation) and `skip_hint` says
    what `--check_judges false` would do instead.
    """
    problems = []
    seen: dict[str, list[JudgeLimits]] = {}
    for service, counts in needed.items():
        deadline = time.monotonic() + ready_timeout
        while True:
            ok, detail, body = _health(service.url, request_timeout, None)
            if ok or detail.startswith("unreachable") or time.monotonic() >= deadline:
                break
            time.sleep(poll_interval)
        rows = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
        if ok and auth_headers is not None:
            refused = _auth_problem(service.url, request_timeout, auth_headers)
            ok, detail = (False, refused) if refused else (ok, detail)
        if ok:
            log.info("judge %s at %s: %s", service.title, service.url, detail)
            if body and isinstance(body.get("limits"), dict):
                seen.setdefault(service.name, []).append(JudgeLimits.model_validate(body["limits"]))
            continue
        problems.append(
            f"- {service.title} at {service.url}: {detail}.\n"
            f"  Needed by {rows} rows. Start it with one of:\n"
            + "".join(f"    {cmd}\n" for cmd in service.start_commands())
            + f"  or point {what} at a running one (--{service.flag} URL)."
        )
    if problems:
        raise PreflightError(
            f"judge service(s) not available, {what} not started:\n" + "\n".join(problems) + f"\n({skip_hint})"
        )
    return {name: _strictest(found) for name, found in seen.items()}


def check_rows_for_judges(rows: Iterable[dict], limits, what: str = "training") -> None:
    """The judged rows against the limits the running judges reported (`check_judges`); validation used the
    configured ones. Raises `PreflightError` listing the rows a judge would refuse."""
    from versavid_r1.data.limits import judge_field_errors

    bad = [f"  {r.get('source_line') or 'row'}: {field}: {msg}" for r in rows if JUDGE_OF_TYPE.get(r.get("problem_type"))
           for field, msg in judge_field_errors(r, limits)]
    if bad:
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise PreflightError(f"{len(bad)} {what} row(s) exceed the limits the running judge services report "
                             "(their /health):\n" + "\n".join(bad[:20]) + more)


def check_launch(training_args) -> None:
    """Refuse option combinations that cannot work, before anything is loaded."""
    if getattr(training_args, "use_vllm", False) and getattr(training_args, "vllm_mode", "") == "server":
        raise PreflightError(SERVER_MODE_MESSAGE)
    if training_args.deepspeed and not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise PreflightError(
            "DeepSpeed without CUDA runs as a single process here (accelerate does not count CPU DeepSpeed "
            "processes, so DeepSpeed's batch-size check fails): run one process with --deepspeed, or several "
            "CPU processes with torchrun and no --deepspeed"
        )


def check_dataset_size(rows: Sequence[dict], training_args, what: str = "training") -> None:
    """TRL draws whole generation batches of distinct prompts; a smaller dataset would train 0 steps."""
    need = training_args.generation_batch_size // training_args.num_generations
    if len(rows) < need:
        raise PreflightError(
            f"the {what} data has {len(rows)} rows but one generation batch takes {need} distinct prompts "
            f"(per_device_train_batch_size x processes x steps_per_generation / num_generations = "
            f"{training_args.generation_batch_size} / {training_args.num_generations}); add rows or lower "
            "per_device_train_batch_size / steps_per_generation"
        )


def summarize_types(rows: Sequence[dict]) -> str:
    counts = Counter(str(r.get("problem_type")) for r in rows)
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
