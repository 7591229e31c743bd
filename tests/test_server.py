"""pet-kit serve: a real HTTP server (uvicorn in a thread) and a real HTTP client."""

from __future__ import annotations

import json
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

    from pet_kit.server import create_app

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
        ({"task": "topic", "texts": "x"}, 422, ""),
        ({"task": "topic", "text": ["x"]}, 422, ""),
    ],
)
def test_clean_errors(server, body, status, match):
    url, _ = server
    got, detail = call(url, "/predict", body)
    assert got == status
    assert match in json.dumps(detail)


def test_size_limits_and_bad_json(server):
    url, _ = server
    status, detail = call(url, "/predict", {"task": "topic", "texts": ["word " * 900]})
    assert status == 413 and "4000 bytes" in detail["detail"]
    status, _ = call(url, "/predict", raw=b"{not json")
    assert status == 422


def test_cli_has_serve():
    args = build_parser().parse_args(["serve", "prompts", "--port", "9001"])
    assert args.port == 9001 and args.func.__name__ == "cmd_serve"
