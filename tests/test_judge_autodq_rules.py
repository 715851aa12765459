"""The caption judge's two AutoDQ rule sets (`--scoring project|official`) and prompt templates loaded from a
file (`--prompt-file`), through the real service on 127.0.0.1 with an OpenAI-speaking stub upstream
(tests/openai_stub_server.py). The expected numbers follow from the rules by hand, on fixed events."""
from __future__ import annotations

import ast
import json
import re

import httpx
import pytest

from openai_stub_server import StubChat, autodq_rule, last_user_text, prompt_field, serve_stub
from versavid_r1.judges import CaptionJudgeSettings, caption_settings_from_args, create_caption_judge_app
from versavid_r1.judges.autodq_prompts import PROJECT_PROMPTS, load_prompt_file, render
from versavid_r1.judges.server import BackgroundServer
from versavid_r1.protocol import PREDICT_PATH

KEY_ENV = "VERSAVID_TEST_UPSTREAM_KEY"
GT_EVENTS = ["A man opens the door", "A man sits down"]


def no_events_for_nothing(body: dict) -> str:
    """The stub's AutoDQ rule, except that a caption saying "nothing happens" has no events."""
    caption = prompt_field(body, "caption")
    if prompt_field(body, "events") is None and caption is not None and "nothing happens" in caption.lower():
        return json.dumps({"events": []})
    return autodq_rule(body)


@pytest.fixture(scope="module")
def upstream():
    """(stub, its OpenAI base URL); the stub's key is not checked, the judge needs one set anyway."""
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, "unused")
    s = StubChat(responder=no_events_for_nothing)
    srv = serve_stub(s)
    yield s, srv.url + "/v1"
    srv.stop()
    mp.undo()


@pytest.fixture
def stub(upstream):
    s, _ = upstream
    s.reset()
    yield s
    s.responder = no_events_for_nothing


def judge(base_url: str, **kw) -> BackgroundServer:
    settings = CaptionJudgeSettings(base_url=base_url, model="stub", upstream_api_key_env=KEY_ENV,
                                    transport_retries=0, max_attempts=1, **kw)
    return BackgroundServer(create_caption_judge_app(settings)).start()


@pytest.fixture(scope="module")
def judges(upstream):
    _, url = upstream
    project, official = judge(url, scoring="project"), judge(url, scoring="official")
    yield {"project": project, "official": official}
    project.stop()
    official.stop()


def score(srv: BackgroundServer, content: str, sol: str, events=None) -> dict:
    body = {"content": content, "sol": sol}
    if events is not None:
        body["events"] = events
    r = httpx.post(srv.url + PREDICT_PATH, json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


# (prediction, ground truth caption, given ground-truth events) -> {mode: (recall, precision)}
CASES = {
    # the ground truth has no events: project 0, official 1 (DREAM-1K: an empty side scores 1.0)
    "no ground-truth events": ("<answer>A man opens the door.</answer>", "The room is dark.", [],
                               {"project": (0.0, 0.0), "official": (1.0, 0.0)}),
    # the prediction has no events: precision project 0, official 1; it entails no ground-truth event
    "no predicted events": ("<answer>Nothing happens.</answer>", "A man opens the door. A man sits down.",
                            GT_EVENTS, {"project": (0.0, 0.0), "official": (0.0, 1.0)}),
    # an empty prediction: project scores 0/0; official: no events (precision 1), nothing recalled
    "empty prediction": ("<answer></answer>", "A man opens the door. A man sits down.", GT_EVENTS,
                         {"project": (0.0, 0.0), "official": (0.0, 1.0)}),
    # ordinary pair: one of two ground-truth events recalled, one of two predicted events entailed
    "ordinary": ("<answer>A MAN OPENS THE DOOR. A dog barks.</answer>", "A man opens the door. A man sits down.",
                 GT_EVENTS, {"project": (0.5, 0.5), "official": (0.5, 0.5)}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_official_and_project_rules_on_fixed_events(judges, stub, case):
    content, gt, events, expected = CASES[case]
    for mode, srv in judges.items():
        stub.reset()
        out = score(srv, content, f"<answer>{gt}</answer>", events)
        assert (out["recall"], out["precision"]) == expected[mode], (case, mode, out)
        if case == "empty prediction":
            assert stub.requests == [], "an empty prediction needs no model call in either mode"


def test_official_rules_lower_case_both_captions(judges, stub):
    content, gt = "<answer>A MAN OPENS THE DOOR. A dog barks.</answer>", "A man opens the door. A man sits down."
    for mode, srv in judges.items():
        stub.reset()
        score(srv, content, f"<answer>{gt}</answer>")
        captions = {prompt_field(r, "caption") for r in stub.requests}
        if mode == "official":
            assert captions == {"a man opens the door. a dog barks.", "a man opens the door. a man sits down."}
        else:
            assert captions == {"A MAN OPENS THE DOOR. A dog barks.", gt}


def test_official_rules_fix_the_event_limit_at_ten():
    with pytest.raises(ValueError, match="at most 10 events"):
        caption_settings_from_args(["--scoring", "official", "--max-events", "5"])
    assert caption_settings_from_args(["--scoring", "official"]).max_events == 10
    with pytest.raises(SystemExit):  # argparse: not a choice
        caption_settings_from_args(["--scoring", "dream"])


# --- prompt templates from a file ----------------------------------------------------------------------
FILE_EXTRACT = ("Video Description: {caption}\n\nExtract at most {max_events} key events. Answer with a "
                "Python dictionary string such as {\"events\": [event1, event2]}.")
FILE_ENTAIL = ("Video Description:\n{caption}\n\nEvents: {events}\nOutput a JSON formed as "
               "{\"events\": [{\"event\": \"...\", \"relationship\": \"...\"}]}")


def file_layout_rule(body: dict) -> str:
    """A model that reads the file's layout (not the project's tags): single-quoted Python dict for
    extraction, DREAM-1K-like {"events": [{"event", "relationship"}]} for entailment."""
    text = last_user_text(body)
    m = re.search(r"Video Description:\n(.*)\n\nEvents: (\[.*\])\n", text, re.DOTALL)
    if m:
        caption, events = m.group(1), ast.literal_eval(m.group(2))
        return json.dumps({"events": [{"event": e, "relationship": "entailment" if e in caption else "neutral"}
                                      for e in events]})
    caption = re.search(r"Video Description: (.*?)\n\n", text, re.DOTALL).group(1)
    return repr({"events": [s.strip() for s in caption.split(".") if s.strip()]})


def test_prompt_file_templates_reach_the_model_verbatim(tmp_path, upstream, stub):
    path = tmp_path / "official_like.yaml"
    path.write_text(json.dumps({"extract": FILE_EXTRACT, "entail": FILE_ENTAIL, "events_format": "python_list"}))
    stub.responder = file_layout_rule
    srv = judge(upstream[1], scoring="official", prompt_file=str(path))
    try:
        stub.reset()
        out = score(srv, "<answer>A man opens the door. A \"dog\" barks.</answer>",
                    "<answer>A man opens the door. A man sits down.</answer>", ["a man opens the door", "a man sits down"])
        metrics = httpx.get(srv.url + "/metrics").json()
    finally:
        srv.stop()
    # official: lower-cased; extraction sees double quotes as single quotes; events as a Python list
    assert (out["recall"], out["precision"]) == (0.5, 0.5)
    assert out["pred_events"] == ["a man opens the door", "a 'dog' barks"]
    users = sorted(last_user_text(r) for r in stub.requests)
    expected = sorted([
        FILE_EXTRACT.replace("{caption}", "a man opens the door. a 'dog' barks.").replace("{max_events}", "10"),
        FILE_ENTAIL.replace("{caption}", 'a man opens the door. a "dog" barks.')
                   .replace("{events}", repr(["a man opens the door", "a man sits down"])),
        FILE_ENTAIL.replace("{caption}", "a man opens the door. a man sits down.")
                   .replace("{events}", repr(["a man opens the door", "a 'dog' barks"])),
    ])
    assert users == expected
    assert all(m["role"] != "system" for r in stub.requests for m in r["messages"]), "the file has no system prompt"
    assert metrics["scoring"] == "official" and metrics["prompts"] == str(path.resolve())


@pytest.mark.parametrize("data,needle", [
    ({"extract": FILE_EXTRACT, "entail": "Description: {caption}"}, r"template 'entail': missing placeholder\(s\) \{events\}"),
    ({"extract": "Describe {video}", "entail": FILE_ENTAIL},
     r"template 'extract': missing placeholder\(s\) \{caption\}; unknown placeholder\(s\) \{video\}"),
    ({"entail": FILE_ENTAIL}, r"missing template\(s\) \['extract'\]"),
    ({"extract": FILE_EXTRACT, "entail": FILE_ENTAIL, "system": "x"}, r"unknown key\(s\) \['system'\]"),
    ({"extract": FILE_EXTRACT, "entail": FILE_ENTAIL, "events_format": "bullets"}, "events_format must be one of"),
    (["not", "a", "mapping"], "expected a mapping"),
])
def test_bad_prompt_files_stop_the_service_at_start(tmp_path, data, needle):
    path = tmp_path / "prompts.yaml"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=needle) as err:
        caption_settings_from_args(["--prompt-file", str(path)])
    assert str(path) in str(err.value)
    with pytest.raises(ValueError, match="cannot read"):
        caption_settings_from_args(["--prompt-file", str(tmp_path / "missing.yaml")])


def test_project_templates_render_in_one_pass():
    # the default is the project's own prompts; a caption that quotes a placeholder stays literal text
    assert load_prompt_file(None) is PROJECT_PROMPTS
    user = PROJECT_PROMPTS.entail_messages("He said {events} twice.", ["a man talks"])[1]["content"]
    assert "He said {events} twice." in user and "1. a man talks" in user
    assert render("{a} {b} {\"c\": 1}", a="{b}", b="x") == "{b} x {\"c\": 1}"
