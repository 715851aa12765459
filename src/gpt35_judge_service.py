"""Start the AutoDQ caption judge service (recall/precision of captions; default port 5200).

    OPENAI_API_KEY=... python src/gpt35_judge_service.py                     # gpt-3.5-turbo-0125
    python src/gpt35_judge_service.py --base-url http://127.0.0.1:5000/v1 --model judge  # local Qwen judge

Without a key (or with one the endpoint refuses) it stops at once with one line and exit status 2.
All flags: --help. The app lives in versavid_r1.judges.caption_app.
"""
from __future__ import annotations

import sys


def main(argv=None) -> None:
    # Options first, with nothing heavy imported: a bad flag exits 2 at once, before any model loads.
    from versavid_r1.judges.server import parse_or_exit, verify_or_exit
    from versavid_r1.judges.settings import caption_settings_from_args

    settings = parse_or_exit(caption_settings_from_args, argv, prog="gpt35_judge_service.py")
    # One real call to the model endpoint: a refused key or unknown model exits 2 now; an endpoint that
    # does not answer yet leaves /health not ready until a call succeeds.
    verified = verify_or_exit(settings, prog="gpt35_judge_service.py")
    from functools import partial

    from versavid_r1.judges.caption_app import create_caption_judge_app
    from versavid_r1.judges.server import run_service

    run_service(settings, partial(create_caption_judge_app, upstream_verified=verified))


if __name__ == "__main__":
    main(sys.argv[1:])
