#!/usr/bin/env python
"""DREAM-1K-style caption annotations -> evaluation rows (see versavid_r1.eval.converters). Run with --help."""
from versavid_r1.eval.convert_cli import dream1k_main

if __name__ == "__main__":
    raise SystemExit(dream1k_main())
