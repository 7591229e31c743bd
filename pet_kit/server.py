"""A small HTTP server for a :class:`~pet_kit.bank.PromptBank` (FastAPI + uvicorn).

Endpoints:

``GET /health``
    ``{"status": "ok", "tasks": n, "backbone": name}``.
``GET /tasks``
    Every task's classes, pattern, tuning mode, ...
``POST /predict``
    ``{"task": "sentiment", "texts": ["...", ...], "probabilities": false}`` → labels
    (and class probabilities when asked); or a mixed batch
    ``{"items": [{"task": "...", "text": "..."}, ...]}`` (one encoder pass per batch).

Limits: request bodies over ``max_body_bytes`` get 413 before they are read (a POST
needs a ``Content-Length``: 411 without);
more than ``max_texts`` texts or a text over ``max_text_chars`` characters get 413 too.
Unknown tasks give 404, malformed requests 422, with a JSON ``{"detail": message}``.
Predictions run one request at a time (a lock): the shared backbone is used by one
forward pass at a time, and torch already uses every core for it.
Install with ``pip install 'pet_kit[serve]'``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict

from .bank import PromptBank
from .errors import InputError, PetKitError

__all__ = ["create_app", "serve"]

log = logging.getLogger(__name__)


class Item(BaseModel):
    """One text of a mixed-task request."""

    model_config = ConfigDict(extra="forbid")
    task: str
    text: str


class PredictRequest(BaseModel):
    """The body of ``POST /predict``."""

    model_config = ConfigDict(extra="forbid")
    task: str | None = None
    texts: list[str] | None = None
    items: list[Item] | None = None
    probabilities: bool = False


def _fastapi() -> Any:
    try:
        import fastapi
    except ImportError:
        raise InputError(
            "pet-kit serve needs FastAPI and uvicorn: pip install 'pet_kit[serve]'"
        ) from None
    return fastapi


def create_app(
    bank: PromptBank,
    *,
    max_texts: int = 256,
    max_text_chars: int = 20_000,
    max_body_bytes: int = 2_000_000,
) -> Any:
    """The FastAPI application serving ``bank``."""
    fastapi = _fastapi()
    from fastapi.responses import JSONResponse

    # FastAPI runs handlers in a thread pool; one prediction at a time keeps the shared
    # backbone's temporary state (deep-prompt hooks, eval flags) private to one request
    lock = threading.Lock()

    app = fastapi.FastAPI(title="pet_kit", description="Cloze-prompt classifiers on one backbone")

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse(status_code=status, content={"detail": message})

    @app.middleware("http")
    async def limit_body(request: Any, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if request.method == "POST" and length is None:
            return error(411, "send a Content-Length header (chunked bodies are not accepted)")
        if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
            return error(413, f"request body over {max_body_bytes} bytes; send fewer texts")
        return await call_next(request)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "tasks": len(bank.tasks), "backbone": bank.backbone_name}

    @app.get("/tasks")
    def tasks() -> dict[str, Any]:
        return {"tasks": bank.tasks}

    @app.post("/predict")
    def predict(req: PredictRequest) -> Any:
        mixed = req.items is not None
        if mixed == (req.texts is not None) or (mixed and req.task is not None):
            return error(422, "send either {'task': ..., 'texts': [...]} or {'items': [...]}")
        if not mixed and req.task is None:
            return error(422, "'task' is required with 'texts'")
        texts = [i.text for i in req.items] if mixed else list(req.texts)
        names = [i.task for i in req.items] if mixed else [req.task] * len(texts)
        if not texts:
            return error(422, "no texts to classify")
        if len(texts) > max_texts:
            return error(413, f"{len(texts)} texts; at most {max_texts} per request")
        longest = max(len(t) for t in texts)
        if longest > max_text_chars:
            return error(413, f"a text has {longest} characters; at most {max_text_chars}")
        unknown = sorted(set(names) - set(bank.tasks))
        if unknown:
            known = ", ".join(sorted(bank.tasks)) or "none"
            return error(404, f"unknown task {unknown[0]!r}; the server has: {known}")
        try:
            with lock:
                probas = bank.predict_mixed_proba(texts, names)
        except PetKitError as exc:
            return error(422, str(exc))
        labels = bank.predict_mixed_labels(probas, names)
        out: dict[str, Any] = {"labels": labels}
        if not mixed:
            out["task"] = req.task
        if req.probabilities:
            out["probabilities"] = [
                dict(zip(bank.tasks[n]["classes"], map(float, p), strict=True))
                for n, p in zip(names, probas, strict=True)
            ]
        return out

    return app


def serve(bank: PromptBank, host: str = "127.0.0.1", port: int = 8000, **limits: Any) -> None:
    """Run the server until interrupted."""
    app = create_app(bank, **limits)
    import uvicorn

    log.info("serving %d task(s) on http://%s:%d", len(bank.tasks), host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning")
