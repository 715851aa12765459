#!/usr/bin/env python
"""Build DarkEventInfer rows from COIN-style annotations (see versavid_r1.data.builders). Run with --help for the options."""
from versavid_r1.data.cli import build_dei_main

if __name__ == "__main__":
    raise SystemExit(build_dei_main())
