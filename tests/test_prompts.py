"""Prompts: templates, prompt JSON validation, seeded draws, LLM answer parsing, the HTTP client, the template bank."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import load_script

from discl import prompts
from discl.errors import InputError



@pytest.fixture(scope="module")
def get_text_prompt(repo_root):
    return load_script("data_generation/ImageNet_LT/get_text_prompt.py")


def test_paper_prompt_templates():
    assert prompts.iwildcam_prompt("cheetah") == "a photo of cheetah in the wild"
    assert prompts.imagenet_lt_prompt("a dog on a beach") == "a 8k real photo: a dog on a beach"


# ---- prompt JSON ---------------------------------------------------------------------------------------

def test_load_prompt_json_strips_entries(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"goldfish": [" a fish ", "another fish"]}))
    assert prompts.load_prompt_json(path) == {"goldfish": ["a fish", "another fish"]}


@pytest.mark.parametrize("content, expected", [
    ('{"goldfish": ["a", ', "not valid JSON (line 1"),
    ('["a", "b"]', "expected a JSON object"),
    ('{"goldfish": "a fish"}', "class 'goldfish': expected a list of prompts, got str"),
    ('{"goldfish": []}', "class 'goldfish': the prompt list is empty"),
    ('{"ok": ["x"], "tree frog": ["x", 3]}', "class 'tree frog': prompt 1 is not a non-empty string: 3"),
    ('{"goldfish": ["  "]}', "class 'goldfish': prompt 0 is not a non-empty string"),
])
def test_load_prompt_json_rejects_malformed(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        prompts.load_prompt_json(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_load_prompt_json_missing_file(tmp_path):
    with pytest.raises(InputError, match="prompt JSON not found"):
        prompts.load_prompt_json(tmp_path / "nope.json")


# ---- draw_prompt ---------------------------------------------------------------------------------------

CANDIDATES = {"goldfish": [f"prompt {i}" for i in range(6)], "single": ["only one"]}


def test_draw_prompt_is_deterministic_and_depends_on_class_and_seed():
    first = [prompts.draw_prompt(CANDIDATES, "goldfish", seed) for seed in (10, 20, 30, 40, 42, 50, 60, 70)]
    again = [prompts.draw_prompt(CANDIDATES, "goldfish", seed) for seed in (10, 20, 30, 40, 42, 50, 60, 70)]
    assert first == again
    # 8 seeds over 6 prompts: a draw that ignored the seed would give one value.
    assert len(set(first)) > 1
    assert all(p in CANDIDATES["goldfish"] for p in first)


def test_draw_prompt_retries_use_other_prompts_until_exhausted():
    attempts = [prompts.draw_prompt(CANDIDATES, "goldfish", 42, attempt) for attempt in range(12)]
    assert sorted(attempts[:6]) == sorted(CANDIDATES["goldfish"])  # attempts 0..5 are all different
    assert sorted(attempts[6:]) == sorted(CANDIDATES["goldfish"])  # then a new round
    # attempt k does not depend on how many attempts follow
    assert prompts.draw_prompt(CANDIDATES, "goldfish", 42, 3) == attempts[3]
    assert [prompts.draw_prompt(CANDIDATES, "single", 10, a) for a in range(3)] == ["only one"] * 3


def test_draw_prompt_unknown_class_names_file():
    with pytest.raises(InputError) as err:
        prompts.draw_prompt(CANDIDATES, "tree frog", 10, source="prompts.json")
    assert str(err.value) == "prompts.json: class 'tree frog' has no entry in the prompt JSON"


# ---- parsing ---------------------------------------------------------------------------------------------

LONG = "a goldfish swimming alone in a clear glass bowl on a wooden desk beside a sunny open window"  # 18 words


def test_parse_prompt_lines_strips_numbering_quotes_blanks_and_short_lines():
    text = "\n".join([
        "Here are ten prompts:",
        "",
        f"1. {LONG} one",
        f"2) \"{LONG} two\"",
        f"- {LONG} three",
        f"  10.  '{LONG} four'  ",
        f"* “{LONG} five”",
        f"(3) {LONG} six",
        f"{LONG} it's seven",
        "4. too short to be a prompt",
        f"5. {LONG} one",  # duplicate
    ])
    assert prompts.parse_prompt_lines(text) == [
        f"{LONG} one", f"{LONG} two", f"{LONG} three", f"{LONG} four", f"{LONG} five", f"{LONG} six",
        f"{LONG} it's seven",
    ]


def test_parse_keeps_numbers_inside_text():
    line = "2019 was the year a goldfish won first prize in a glass bowl at the county fair under bright lights"
    assert prompts.parse_prompt_lines(line) == [line]


# ---- template bank ------------------------------------------------------------------------------------

def test_template_bank_is_deterministic_diverse_and_long_enough():
    bank = prompts.template_prompts_for_class("tree frog", n=10, seed=3)
    assert bank == prompts.template_prompts_for_class("tree frog", n=10, seed=3)
    assert bank != prompts.template_prompts_for_class("tree frog", n=10, seed=4)
    assert len(set(bank)) == 10
    assert all("tree frog" in p and len(p.split()) >= 15 for p in bank)
    # ten prompts walk ten different scene settings
    settings = [next(s for s in prompts._SETTING if s in p) for p in bank]
    assert len(set(settings)) == 10


def test_template_backend_script_resumes(tmp_path, get_text_prompt, capsys):
    out = tmp_path / "prompts.json"
    assert get_text_prompt.main(["--classes", "goldfish", "--prompt_json", str(out), "--backend", "template"]) == 0
    kept = json.loads(out.read_text())["goldfish"]
    assert get_text_prompt.main(["--classes", "goldfish", "tree frog", "--prompt_json", str(out),
                                 "--backend", "template", "--seed", "9"]) == 0
    data = prompts.load_prompt_json(out)
    assert data["goldfish"] == kept  # complete class kept, not rebuilt with the new seed
    assert len(data["tree frog"]) == 10
    assert "2 classes, 20 prompts" in capsys.readouterr().out


def test_classes_from_a_hard_sample_csv_of_any_dataset(tmp_path, get_text_prompt, repo_root, capsys):
    out = tmp_path / "prompts.json"
    assert get_text_prompt.main(["--data_csv", str(repo_root / "data_generation/ImageNet_LT/sample.csv"),
                                 "--prompt_json", str(out), "--backend", "template"]) == 0
    assert {"goldfish", "American Staffordshire Terrier"} <= set(prompts.load_prompt_json(out))
    # iWildCam: stored under the CSV's scientific name, written about the common name
    wild = tmp_path / "wild.json"
    assert get_text_prompt.main(["--dataset", "iwildcam", "--data_csv",
                                 str(repo_root / "data_generation/iWildCam/sample.csv"), "--prompt_json", str(wild),
                                 "--backend", "template", "--num-prompts", "2"]) == 0
    data = prompts.load_prompt_json(wild)
    assert all("cheetah" in p for p in data["acinonyx jubatus"])
    with pytest.raises(InputError, match="exactly one of --data-csv and --classes"):
        get_text_prompt.main(["--prompt_json", str(tmp_path / "none.json"), "--backend", "template"])


# ---- the HTTP path against a local chat-completions server -----------------------------------------

SECRET = "sk-test-secret-123456"


class ChatServer:
    """A local OpenAI-style endpoint: scripted answers per request; records headers and bodies."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                status, content = outer.script.pop(0) if outer.script else (500, "script exhausted")
                if status != 200:
                    payload = json.dumps({"error": {"message": content}}).encode()
                else:
                    payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def numbered(name, count):
    return "\n".join(f"{i}. A {name} alone in scene number {i} on a quiet sunny afternoon in a wide green "
                     f"park near a lake" for i in range(1, count + 1))


def test_llm_backend_against_local_server(tmp_path, get_text_prompt, monkeypatch, caplog, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    out = tmp_path / "prompts.json"
    script = [(500, "overloaded"), (200, numbered("goldfish", 3)), (200, "\n\n" + numbered("goldfish", 10)),
              (429, "slow down"), (200, numbered("tree frog", 12))]
    caplog.set_level(logging.DEBUG)
    with ChatServer(script) as server:
        code = get_text_prompt.main(["--classes", "goldfish", "tree frog", "--prompt_json", str(out),
                                     "--base-url", server.base_url, "--llm-model", "local-chat", "--backoff", "0.01"])
    assert code == 0
    assert len(server.requests) == 5  # 500 retried, 3 lines re-asked, 429 retried
    assert all(r["auth"] == f"Bearer {SECRET}" for r in server.requests)
    assert all(r["path"] == "/v1/chat/completions" and r["body"]["model"] == "local-chat" for r in server.requests)
    assert "tree frog" in server.requests[-1]["body"]["messages"][0]["content"]
    data = prompts.load_prompt_json(out)
    assert list(data) == ["goldfish", "tree frog"]
    assert data["goldfish"][0].startswith("A goldfish alone in scene number 1 on")
    assert [len(v) for v in data.values()] == [10, 10]
    assert "HTTP 500" in caplog.text and "HTTP 429" in caplog.text
    everything = out.read_text() + caplog.text + "".join(capsys.readouterr())
    assert SECRET not in everything


def test_llm_client_gives_up_and_keeps_finished_classes(tmp_path, get_text_prompt, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    out = tmp_path / "prompts.json"
    with ChatServer([(200, numbered("goldfish", 10))] + [(503, "down")] * 3) as server:
        code = get_text_prompt.main(["--classes", "goldfish", "tree frog", "--prompt_json", str(out),
                                     "--base-url", server.base_url, "--request-retries", "2", "--backoff", "0.01"])
    assert code == 1
    assert list(prompts.load_prompt_json(out)) == ["goldfish"]
    # resume: goldfish is complete, only tree frog is asked
    with ChatServer([(200, numbered("tree frog", 10))]) as server:
        assert get_text_prompt.main(["--classes", "goldfish", "tree frog", "--prompt_json", str(out),
                                     "--base-url", server.base_url]) == 0
        assert len(server.requests) == 1
    assert list(prompts.load_prompt_json(out)) == ["goldfish", "tree frog"]


def test_llm_client_fails_fast_on_auth_error(tmp_path):
    with ChatServer([(401, "bad key")]) as server:
        client = prompts.ChatClient(base_url=server.base_url, api_key=SECRET, backoff=0.01)
        assert SECRET not in repr(client)
        with pytest.raises(prompts.LLMError, match="HTTP 401"):
            client.complete("hello")
        assert len(server.requests) == 1


def test_missing_api_key_is_an_input_error(tmp_path, get_text_prompt, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(InputError, match="OPENAI_API_KEY"):
        get_text_prompt.main(["--classes", "goldfish", "--prompt_json", str(tmp_path / "p.json")])
    assert not (tmp_path / "p.json").exists()
