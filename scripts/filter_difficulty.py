#!/usr/bin/env python
"""Difficulty filtering of a training JSONL (see versavid_r1.data.difficulty). Run with --help for the options."""
from versavid_r1.data.difficulty_run import main

if __name__ == "__main__":
    raise SystemExit(main())
