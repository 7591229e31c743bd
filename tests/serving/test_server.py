"""pet-kit serve: a real HTTP server (uvicorn in a thread) and a real HTTP client."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from conftest import tiny_clf

from pet_kit.cli import build_bank, build_parser

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

TOPIC_PVP = {
    "pattern": "[SOFT] Topic: [MASK]. {text}",
    "verbalizer": {"film": ["movie"], "book": ["book"], "music": ["music"]},
}


@pytest.fixture(scope="module")
def server(tiny_dir, tmp_path_factory):
    from conftest import NEG, POS

    from pet_kit.serving.server import create_app

    root = tmp_path_factory.mktemp("served")
    X = POS + NEG
    tiny_clf(tiny_dir).fit(X, ["positive"] * 8 + ["negative"] * 8).save(root / "sentiment")
    tiny_clf(tiny_dir, pvp=TOPIC_PVP).fit(X, ["film", "book", "music", "film"] * 4).save(
        root / "topic"
    )
    bank = build_bank([str(root)], model=str(tiny_dir))
    app = create_app(bank, max_texts=5, max_text_chars=200, max_body_bytes=4000)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", bank
    srv.should_exit = True
    thread.join(timeout=10)


def call(url, path, body=None, raw=None, headers=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_health_and_tasks(server):
    url, bank = server
    health = {"status": "ok", "tasks": 2, "backbone": bank.backbone_name}
    assert call(url, "/health") == (200, health)
    status, body = call(url, "/tasks")
    assert status == 200 and set(body["tasks"]) == {"sentiment", "topic"}
    assert body["tasks"]["topic"]["classes"] == ["book", "film", "music"]


def test_tasks_do_not_reveal_where_the_prompts_are(server):
    url, bank = server
    with urllib.request.urlopen(url + "/tasks", timeout=30) as resp:
        raw = resp.read().decode()
    folder = bank.tasks["topic"]["source"]  # Python callers still get it
    assert folder.endswith("topic") and "served" in folder
    assert "source" not in raw and "served" not in raw


def test_predict_one_task_and_a_mixed_batch(server):
    url, bank = server
    texts = ["a great movie", "i hate this book"]
    status, body = call(url, "/predict", {"task": "topic", "texts": texts, "probabilities": True})
    assert status == 200 and body["task"] == "topic"
    assert body["labels"] == list(bank.predict(texts, "topic"))
    expected = bank.predict_proba(texts, "topic")
    for got, row in zip(body["probabilities"], expected, strict=True):
        assert list(got) == ["book", "film", "music"]
        assert list(got.values()) == pytest.approx(row.tolist(), abs=1e-6)
    items = [{"task": "sentiment", "text": texts[0]}, {"task": "topic", "text": texts[1]}]
    status, body = call(url, "/predict", {"items": items})
    assert status == 200
    assert body["labels"] == [
        bank.predict([texts[0]], "sentiment")[0],
        bank.predict([texts[1]], "topic")[0],
    ]


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        (
            {"task": "nope", "texts": ["x"]},
            404,
            "unknown task 'nope'; the server has: sentiment, topic",
        ),
        ({"task": "topic", "texts": []}, 422, "no texts"),
        ({"task": "topic", "texts": ["x"] * 6}, 413, "at most 5"),
        ({"task": "topic", "texts": ["x" * 201]}, 413, "at most 200"),
        ({"texts": ["x"]}, 422, "'task' is required"),
        ({"task": "topic", "texts": ["x"], "items": []}, 422, "either"),
        ({"task": "topic", "texts": "x"}, 422, "texts: Input should be a valid list (got str)"),
        ({"task": "topic", "text": ["x"]}, 422, "invalid request: text: unknown field"),
        (
            {"task": "topic", "texts": [3]},
            422,
            "texts[0]: Input should be a valid string (got int)",
        ),
        ({"items": [{"task": "topic"}]}, 422, "items[0].text: required field is missing"),
    ],
)
def test_clean_errors(server, body, status, match):
    url, _ = server
    got, detail = call(url, "/predict", body)
    assert got == status
    assert list(detail) == ["detail"] and isinstance(detail["detail"], str)
    assert match in detail["detail"]


def test_size_limits_and_bad_json(server):
    url, _ = server
    status, detail = call(url, "/predict", {"task": "topic", "texts": ["word " * 900]})
    assert status == 413 and "4000 bytes" in detail["detail"]
    status, _ = call(url, "/predict", raw=b"{not json")
    assert status == 422


def test_cli_has_serve():
    args = build_parser().parse_args(["serve", "prompts", "--port", "9001"])
    assert args.port == 9001 and args.func.__name__ == "cmd_serve"


# ------------------------------------------- every error is {"detail": "<message>"}
@pytest.fixture(scope="module")
def client(server):
    """The same bank behind FastAPI's TestClient (raw bodies, exceptions surface)."""
    from fastapi.testclient import TestClient

    from pet_kit.serving.server import create_app

    _, bank = server
    return TestClient(create_app(bank, max_texts=5, max_text_chars=200, max_body_bytes=60_000))


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b'{"task": "topic", "texts": ["x"], "probabilities": NaN}', "NaN is not a JSON number"),
        (b'{"task": "topic", "texts": ["x"], "probabilities": Infinity}', "Infinity is not a"),
        (b'{"task": "topic", "texts": ["x"], "probabilities": -Infinity}', "-Infinity is not"),
        (b'{"task": "topic", "texts": ["x"], "probabilities": 1e999999}', "1e999999 is too large"),
        (b'{"task": NaN, "texts": ["x"]}', "NaN is not a JSON number"),
        (b'{"task": "topic", "texts": ["\\udc80"]}', "texts[0]: holds a lone UTF-16 surrogate"),
        (b'{"task": "\\ud800", "texts": ["x"]}', "task: holds a lone UTF-16 surrogate"),
        (b'{"items": [{"task": "topic", "text": "a\\udfffb"}]}', "items[0].text: holds a lone"),
        (b"[" * 20_000 + b"]" * 20_000, "nested too deeply to parse"),
        (b'{"a": ' * 5_000 + b"1" + b"}" * 5_000, "nested too deeply to parse"),
        (b'{"task": "topic", "texts": ["x"], "probabilities": ' + b"7" * 5000 + b"}", "digits"),
        (b'{"task": "topic", "texts": [1.5]}', "texts[0]: Input should be a valid string"),
        (b"{not json", "not valid JSON: Expecting property name enclosed in double quotes"),
        (b"\xff\xfe\x00", "the request body is not valid JSON"),
        (b"[]", "the body: Input should be a valid dictionary"),
        (b"", "the request body is empty"),
    ],
)
def test_raw_bodies_get_one_json_message(client, raw, match):
    resp = client.post("/predict", content=raw, headers=JSON)
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert list(body) == ["detail"] and isinstance(body["detail"], str)
    assert match in body["detail"]


def test_a_body_without_json_content_type_says_so(client):
    resp = client.post("/predict", content=b'{"task": "topic", "texts": ["x"]}')
    assert resp.status_code == 422
    assert "Content-Type: application/json" in resp.json()["detail"]


def test_unexpected_errors_are_json_500_and_logged(client, server, monkeypatch, caplog):
    _, bank = server

    def broken(*args, **kwargs):
        raise RuntimeError("/secret/path/of/the/server")

    monkeypatch.setattr(bank, "predict_mixed_proba", broken)
    with caplog.at_level(logging.ERROR, logger="pet_kit.serving.server"):
        resp = client.post("/predict", json={"task": "topic", "texts": ["x"]})
    assert resp.status_code == 500
    assert resp.json() == {"detail": "internal error: RuntimeError; see the server log"}
    logged = [r for r in caplog.records if r.name == "pet_kit.serving.server"]
    assert logged and logged[0].exc_info is not None
    assert "/secret/path/of/the/server" in caplog.text


def test_pet_kit_errors_are_422_with_their_message(client, server, monkeypatch):
    from pet_kit import InputError

    _, bank = server

    def refuse(*args, **kwargs):
        raise InputError("X[0] is not usable \udc80; fix it")

    monkeypatch.setattr(bank, "predict_mixed_proba", refuse)
    resp = client.post("/predict", json={"task": "topic", "texts": ["x"]})
    assert resp.status_code == 422
    assert resp.json() == {"detail": "X[0] is not usable \\udc80; fix it"}


# ------------------------------------------------------- pet-kit serve: start-up
def test_serve_logs_its_address_and_every_request(tiny_dir, tmp_path):
    """The real command: a free port (--port 0), the address it listens on, access logs."""
    import os
    import queue
    import re
    import signal
    import subprocess
    import sys

    from conftest import REPO

    tiny_clf(tiny_dir).fit(None).save(tmp_path / "sentiment")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    args = ["serve", str(tmp_path / "sentiment"), "--model", str(tiny_dir), "--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pet_kit.cli", *args, "--device", "cpu", "--threads", "1"],
        stdout=subprocess.PIPE,  # uvicorn's access lines
        stderr=subprocess.STDOUT,  # pet_kit's and uvicorn's other lines
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    seen: list[str] = []

    def wait_for(pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert proc.poll() is None, "".join(seen)
                continue
            found = re.search(pattern, seen[-1])
            if found:
                return found
        raise AssertionError(f"{pattern!r} not logged:\n{''.join(seen)}")

    try:
        wait_for(re.escape(f"loading backbone {tiny_dir} on cpu ..."))
        port = int(wait_for(r"listening on http://127\.0\.0\.1:(\d+), 1 task\(s\): sentiment$")[1])
        url = f"http://127.0.0.1:{port}"
        assert call(url, "/health")[0] == 200
        wait_for(r'"GET /health HTTP/1\.\d" 200')
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in "".join(seen)


def test_serve_on_a_busy_port_fails_before_loading(tmp_path, monkeypatch, capsys):
    import pet_kit.cli as cli
    from pet_kit.cli import main

    monkeypatch.setattr(cli, "build_bank", lambda *a, **k: pytest.fail("the prompts were loaded"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(tmp_path), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot listen on http://127.0.0.1:{port}: ")
    assert "choose another port" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--port", "70000"],
            "cannot listen on http://127.0.0.1:70000: the port must be from 0 to 65535",
        ),
        (["--max-texts", "0"], "--max-texts must be a positive integer, got 0"),
    ],
)
def test_serve_refuses_bad_options_before_loading(tmp_path, monkeypatch, capsys, argv, message):
    import pet_kit.cli as cli
    from pet_kit.cli import main

    monkeypatch.setattr(cli, "build_bank", lambda *a, **k: pytest.fail("the prompts were loaded"))
    assert main(["serve", str(tmp_path), *argv]) == 1
    assert capsys.readouterr().err == f"error: {message}\n"


def test_serve_log_level_option_and_check():
    from pet_kit.errors import InputError
    from pet_kit.serving.server import serve

    assert build_parser().parse_args(["serve", "p"]).log_level == "info"
    assert (
        build_parser().parse_args(["serve", "p", "--log-level", "warning"]).log_level == "warning"
    )
    with pytest.raises(InputError, match="log_level must be one of critical, error, warning"):
        serve(None, log_level="loud")
