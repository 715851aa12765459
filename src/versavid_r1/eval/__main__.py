"""`python -m versavid_r1.eval --config configs/eval/NAME.yaml --model PATH [--output DIR] [--flag value ...]`,
or the paper's whole table: `python -m versavid_r1.eval --suite paper --model PATH --data_root DIR`
(versavid_r1.eval.suite).

Prints the summary table and where the files are. Exit status:

- 0: the run finished and scored at least one row (rows that could not be evaluated are counted in the
  summary and listed under `errors`);
- 1: the run finished but scored nothing (every row invalid, every video unreadable, every judge call
  failed, or an empty data file): there is no number to report;
- 2: a configuration, data-file or judge-service problem found before the run (the message says what to do).
"""
from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--suite" or a.startswith("--suite=") for a in args):  # the whole table (eval.suite)
        from versavid_r1.eval.suite import suite_main

        return suite_main(args)
    from versavid_r1.eval.config import EvalSetupError, parse_eval_args
    from versavid_r1.eval.report import markdown
    from versavid_r1.eval.runner import run_eval

    try:
        cfg = parse_eval_args(argv)
    except ValueError as exc:  # a bad value or an unknown key in the YAML
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = run_eval(cfg)
    except (EvalSetupError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(summary))
    files = summary["files"]
    print(f"per-sample results: {files['samples']}\nsummary: {cfg.output_dir}/summary.json, {files['summary_md']}")
    counts = summary["counts"]
    if counts["not_scored"]:
        print(f"{counts['not_scored']} rows were not scored (see 'errors' in summary.json); "
              "rows with a judge error are scored again by the next run.", file=sys.stderr)
    if not counts["scored"]:
        by_status = ", ".join(f"{k}: {v}" for k, v in counts["by_status"].items()) or "the data file has no rows"
        print(f"error: nothing was scored ({by_status}); see {files['samples']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
