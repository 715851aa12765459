#!/usr/bin/env python
"""Validate a VersaVid-R1 JSONL file (see versavid_r1.data.schema). Run with --help for the options."""
from versavid_r1.data.cli import validate_main

if __name__ == "__main__":
    raise SystemExit(validate_main())
