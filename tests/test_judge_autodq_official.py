"""DREAM-1K's rules under `--scoring official` (issue 20): an extracted event that repeats counts again, as in
DREAM-1K's code, and JSON mode is asked for only when the prompt asks for JSON (DREAM-1K's extraction prompt
asks for a Python dict string; OpenAI refuses JSON mode for a prompt that never says JSON). Through the real
AutoDQ scorer with the openai client against the OpenAI-speaking stub on 127.0.0.1."""
from __future__ import annotations

import asyncio
import json

import openai
import pytest

from openai_stub_server import StubChat, prompt_field, serve_stub
from versavid_r1.judges import CaptionJudgeSettings
from versavid_r1.judges.autodq import AutoDQ, parse_events

GT = "a man opens the door. a man opens the door. a man sits down. a dog barks."
PRED = "a man opens the door. a man sits down."


def extraction_repeats(body: dict) -> str:
    """Extraction: the caption's sentences, repeats kept; entailment: an event is entailed when it is a sentence of
    the caption (the stub's rule)."""
    caption, events = prompt_field(body, "caption"), prompt_field(body, "events")
    if caption is None:  # the prompt file below: the caption is the last line, the events (if any) between
        lines = body["messages"][-1]["content"].splitlines()
        caption = lines[-1]
        events = "\n".join(lines[1:-1]) if lines[0].startswith("Label") else None
    sentences = [x.strip() for x in caption.split(".") if x.strip()]
    if events is None:
        return json.dumps({"events": sentences})
    items = [e.split(". ", 1)[-1] for e in events.splitlines() if e.strip()]
    return json.dumps({"results": [{"id": i, "relation": "entailment" if e in sentences else "neutral"}
                                   for i, e in enumerate(items, 1)]})


@pytest.fixture(scope="module")
def stub():
    s = StubChat(responder=extraction_repeats)
    srv = serve_stub(s)
    yield s, srv.url + "/v1"
    srv.stop()


def scorer(url: str, **kw) -> AutoDQ:
    settings = CaptionJudgeSettings(base_url=url, model="stub", transport_retries=0, max_attempts=1, **kw)
    return AutoDQ(openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0), settings)


def test_parse_events_keeps_repeats_only_when_asked():
    reply = json.dumps({"events": ["a", "b", "a"]})
    assert parse_events(reply, 10) == ["a", "b"]
    assert parse_events(reply, 10, dedupe=False) == ["a", "b", "a"]


@pytest.mark.parametrize("scoring, recall", [("official", 3 / 4), ("project", 2 / 3)])
def test_a_repeated_ground_truth_event_counts_again_under_the_official_rules(stub, scoring, recall):
    s, url = stub
    out = asyncio.run(scorer(url, scoring=scoring).score(PRED, GT))
    assert out["recall"] == pytest.approx(recall) and out["precision"] == 1.0
    assert len(out["gt_events"]) == (4 if scoring == "official" else 3)


def test_json_mode_only_for_prompts_that_ask_for_json(stub, tmp_path):
    s, url = stub
    s.reset()
    asyncio.run(scorer(url).score(PRED, GT))  # the project's prompts ask for JSON
    assert s.requests and all(r.get("response_format") == {"type": "json_object"} for r in s.requests)
    prompts = tmp_path / "dict_prompts.yaml"
    prompts.write_text('extract: "List the events as a Python dictionary string, at most {max_events}.\\n{caption}"\n'
                       'entail: "Label each event against the caption as a Python list.\\n{events}\\n{caption}"\n')
    s.reset()
    asyncio.run(scorer(url, prompt_file=str(prompts)).score(PRED, GT))
    assert s.requests and not any("response_format" in r for r in s.requests)
