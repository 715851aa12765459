#!/usr/bin/env python
"""Build MixVidQA rows from clip pairs with QA (see versavid_r1.data.builders). Run with --help for the options."""
from versavid_r1.data.cli import build_mix_main

if __name__ == "__main__":
    raise SystemExit(build_mix_main())
