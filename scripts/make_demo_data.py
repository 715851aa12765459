#!/usr/bin/env python
"""Write the synthetic demo dataset (see versavid_r1.data.demo). Run with --help for the options."""
from versavid_r1.data.cli import make_demo_main

if __name__ == "__main__":
    raise SystemExit(make_demo_main())
