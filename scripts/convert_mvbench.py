#!/usr/bin/env python
"""MVBench-style task files -> evaluation rows (see versavid_r1.eval.converters). Run with --help."""
from versavid_r1.eval.convert_cli import mvbench_main

if __name__ == "__main__":
    raise SystemExit(mvbench_main())
