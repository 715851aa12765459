#!/usr/bin/env python
"""The data ablation in miniature on the CPU demo (see versavid_r1.ablation; --help for the options).

    .venv/bin/python scripts/experiments/ablation.py --out outputs/ablation          # 3 variants x 3 seeds
"""
from versavid_r1.ablation import main

if __name__ == "__main__":
    raise SystemExit(main())
