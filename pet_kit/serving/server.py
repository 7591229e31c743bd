"""A small HTTP server for a :class:`~pet_kit.serving.bank.PromptBank` (FastAPI + uvicorn).

Endpoints:

``GET /health``
    ``{"status": "ok", "tasks": n, "backbone": name}``.
``GET /tasks``
    Every task's classes, pattern, tuning mode, ... (not where its files are: the
    server's paths stay private).
``POST /predict``
    ``{"task": "sentiment", "texts": ["...", ...], "probabilities": false}`` → labels
    (and class probabilities when asked); or a mixed batch
    ``{"items": [{"task": "...", "text": "..."}, ...]}`` (one encoder pass per batch).

Limits: request bodies over ``max_body_bytes`` get 413 before they are read (a POST
needs a ``Content-Length``: 411 without);
more than ``max_texts`` texts or a text over ``max_text_chars`` characters get 413 too.
Unknown tasks give 404, malformed requests 422.

Every error is JSON of one shape, ``{"detail": "<message>"}``, the message a single
string naming the field at fault and what was wrong: invalid JSON (including ``NaN``,
``Infinity`` and numbers too large for a float, which Python's ``json`` would accept,
nesting too deep to parse, and texts holding lone UTF-16 surrogates such as
``"\\udc80"``), a field of the wrong type or an unknown field, and any
:class:`~pet_kit.errors.PetKitError` give 422; an unexpected failure gives 500 with
``"internal error: <exception type>; see the server log"`` (the traceback is logged,
never sent).

Predictions run one request at a time (a lock): the shared backbone is used by one
forward pass at a time, and torch already uses every core for it.

:func:`serve` logs ``listening on http://HOST:PORT, N task(s): ...`` (INFO, logger
``pet_kit.serving.server``) once the server accepts connections, and uvicorn logs one
access line per request at ``log_level="info"`` (the default). :func:`bind` reserves the
address first, so a port in use is an :class:`~pet_kit.errors.InputError` before
anything slow happens.
Install with ``pip install 'pet_kit[serve]'``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

from pydantic import AfterValidator, BaseModel, ConfigDict

from ..errors import InputError, PetKitError
from .bank import PromptBank

__all__ = ["LOG_LEVELS", "bind", "create_app", "serve"]

log = logging.getLogger(__name__)

#: ``log_level`` values of :func:`serve` (uvicorn's, ``trace`` aside).
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

#: What ``/tasks`` leaves out of :attr:`PromptBank.tasks` (server-side file paths).
PRIVATE_TASK_KEYS = ("source",)

_BODY_SHAPE = (
    'the body must be {"task": name, "texts": [strings], "probabilities": true/false} or'
    ' {"items": [{"task": name, "text": string}, ...]}'
)


def _no_surrogates(text: str) -> str:
    """Refuse lone UTF-16 surrogates (``"\\udc80"`` in JSON): not Unicode characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"holds a lone UTF-16 surrogate ({text[exc.start]!r}) at character {exc.start},"
            " which is not a Unicode character; send valid UTF-8 text"
        ) from exc
    return text


Text = Annotated[str, AfterValidator(_no_surrogates)]


class Item(BaseModel):
    """One text of a mixed-task request."""

    model_config = ConfigDict(extra="forbid")
    task: Text
    text: Text


class PredictRequest(BaseModel):
    """The body of ``POST /predict``."""

    model_config = ConfigDict(extra="forbid")
    task: Text | None = None
    texts: list[Text] | None = None
    items: list[Item] | None = None
    probabilities: bool = False


class _BodyError(ValueError):
    """A request body that is not strict JSON (message: what and how to fix it)."""


def _reject_constant(name: str) -> NoReturn:
    raise _BodyError(f"{name} is not a JSON number; send a finite number or null")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BodyError(f"the number {text[:30]} is too large for a float; send a finite number")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members as a dict; a key given twice is refused (Python's
    :func:`json.loads` would keep the last silently: ``{"task": "a", "task": "b"}``)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _BodyError(f"the key {key[:40]!r} appears twice in one object; send it once")
        out[key] = value
    return out


def strict_json(body: bytes) -> Any:
    """Parse a request body as strict JSON.

    Python's :func:`json.loads` accepts ``NaN``, ``Infinity``, numbers that overflow
    to infinity and a key given twice in one object (keeping the last); they are refused
    here, as are bodies nested too deeply to parse and bodies that are not UTF-8.

    Raises
    ------
    ValueError
        With a message saying what is wrong (and where, for syntax errors).
    """
    try:
        return json.loads(
            body,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except _BodyError:
        raise
    except json.JSONDecodeError as exc:
        raise _BodyError(
            f"{exc.msg} at line {exc.lineno}, column {exc.colno} (character {exc.pos})"
        ) from exc
    except RecursionError as exc:
        raise _BodyError("it is nested too deeply to parse; send a flat request") from exc
    except UnicodeDecodeError as exc:
        raise _BodyError("it is not UTF-8 text; send the body encoded as UTF-8") from exc
    except ValueError as exc:  # an integer of more than 4300 digits (int_max_str_digits)
        raise _BodyError("a number in it has too many digits; send smaller numbers") from exc


def _where(loc: Sequence[Any]) -> str:
    """``("body", "items", 1, "text")`` → ``items[1].text``."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_message(errors: Sequence[Any]) -> str:
    """One readable string for FastAPI / pydantic validation errors (never echoing the
    input back: only field names, what was wrong and the input's type)."""
    if not errors:
        return f"invalid request; {_BODY_SHAPE}"
    problems = []
    for err in errors[:3]:
        kind = str(err.get("type", ""))
        if kind == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "")
            return f"the request body is not valid JSON: {reason}".rstrip(": ")
        where = _where(err.get("loc", ()))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if not where and kind == "missing":
            return f"the request body is empty; {_BODY_SHAPE}"
        if not where and isinstance(err.get("input"), bytes):  # no JSON content type
            return f"send the body as JSON, with Content-Type: application/json; {_BODY_SHAPE}"
        where = where or "the body"
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required field is missing"
        elif "input" in err and kind.endswith(("_type", "_parsing")):
            message += f" (got {type(err['input']).__name__})"
        problems.append(f"{where}: {message}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"invalid request: {'; '.join(problems)}{more}; {_BODY_SHAPE}"


def _fastapi() -> Any:
    try:
        import fastapi
    except ImportError as exc:
        raise InputError(
            "pet-kit serve needs FastAPI and uvicorn: pip install 'pet_kit[serve]'"
        ) from exc
    return fastapi


def _json_content_type(value: str | None) -> bool:
    if not value:
        return False
    kind = value.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _strict_route_class() -> type:
    """An ``APIRoute`` whose JSON bodies are parsed by :func:`strict_json` (FastAPI's own
    parsing accepts ``NaN``); a body that is not strict JSON is a validation error."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.routing import APIRoute
    from starlette.requests import Request

    class StrictJSONRequest(Request):
        async def json(self) -> Any:
            if not hasattr(self, "_strict_json"):
                body = await self.body()
                try:
                    self._strict_json = strict_json(body)
                except _BodyError as exc:
                    raise RequestValidationError(
                        [{"type": "json_invalid", "loc": ("body",), "ctx": {"error": str(exc)}}]
                    ) from exc
            return self._strict_json

    class StrictJSONRoute(APIRoute):
        def get_route_handler(self) -> Any:
            handler = super().get_route_handler()

            async def strict(request: Request) -> Any:
                request = StrictJSONRequest(request.scope, request.receive)
                if _json_content_type(request.headers.get("content-type")):
                    if await request.body():
                        await request.json()  # parse errors raised here reach the handlers
                return await handler(request)

            return strict

    return StrictJSONRoute


def create_app(
    bank: PromptBank,
    *,
    max_texts: int = 256,
    max_text_chars: int = 20_000,
    max_body_bytes: int = 2_000_000,
) -> Any:
    """The FastAPI application serving ``bank``."""
    fastapi = _fastapi()
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    # FastAPI runs handlers in a thread pool; one prediction at a time keeps the shared
    # backbone's temporary state (deep-prompt hooks, eval flags) private to one request
    lock = threading.Lock()

    app = fastapi.FastAPI(title="pet_kit", description="Cloze-prompt classifiers on one backbone")
    app.router.route_class = _strict_route_class()

    def error(status: int, message: str) -> JSONResponse:
        # a message may quote a text with lone surrogates: keep the response encodable
        safe = message.encode("utf-8", "backslashreplace").decode("utf-8")
        return JSONResponse(status_code=status, content={"detail": safe})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Any, exc: RequestValidationError) -> JSONResponse:
        return error(422, validation_message(exc.errors()))

    @app.exception_handler(PetKitError)
    async def pet_kit_error(request: Any, exc: PetKitError) -> JSONResponse:
        return error(422, str(exc))

    @app.middleware("http")
    async def limit_body(request: Any, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if request.method == "POST" and length is None:
            return error(411, "send a Content-Length header (chunked bodies are not accepted)")
        if length is not None and not (length.isascii() and length.isdigit()):
            return error(400, f"Content-Length {length[:40]!r} is not a number of bytes")
        if length is not None and int(length) > max_body_bytes:
            return error(413, f"request body over {max_body_bytes} bytes; send fewer texts")
        try:
            return await call_next(request)
        except Exception as exc:  # anything not handled above: JSON, and the log has it
            log.exception("internal error on %s %s", request.method, request.url.path)
            return error(500, f"internal error: {type(exc).__name__}; see the server log")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "tasks": len(bank.tasks), "backbone": bank.backbone_name}

    @app.get("/tasks")
    def tasks() -> dict[str, Any]:
        public = {
            name: {k: v for k, v in info.items() if k not in PRIVATE_TASK_KEYS}
            for name, info in bank.tasks.items()
        }
        return {"tasks": public}

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
        with lock:
            probas = bank.predict_mixed_proba(texts, names)
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


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A socket bound to ``host:port`` (``port=0``: a free port), for :func:`serve`.

    Raises
    ------
    InputError
        The address cannot be used (a port in use or out of range, an unknown host, a
        port below 1024 without the right to use it), saying how to fix it.
    """
    where = _url(host, port)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(f"cannot listen on {where}: the port must be from 0 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:
        raise InputError(
            f"cannot listen on {where}: unknown host {host!r} ({exc}); pass an address such as"
            " 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
        ) from exc
    sock = socket.socket(family, kind, proto)
    try:
        if os.name != "nt":  # as uvicorn does; on Windows it would let two servers share
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise InputError(
            f"cannot listen on {where}: {exc.strerror or exc}; choose another port, or stop"
            " the program that uses this one"
        ) from exc
    sock.set_inheritable(True)
    return sock


def serve(
    bank: PromptBank,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    log_level: str = "info",
    sock: socket.socket | None = None,
    **limits: Any,
) -> None:
    """Run the server until interrupted.

    Parameters
    ----------
    bank : PromptBank
        The tasks to serve.
    host, port : str, int
        Where to listen (ignored when ``sock`` is given); ``port=0`` picks a free port.
    log_level : {"critical", "error", "warning", "info", "debug"}, default="info"
        uvicorn's logging: ``"info"`` logs one access line per request.
    sock : socket.socket, optional
        A socket from :func:`bind` (bind first to fail fast on a busy port); closed
        when the server stops.
    **limits
        ``max_texts``, ``max_text_chars``, ``max_body_bytes`` (see :func:`create_app`).

    Raises
    ------
    InputError
        An unknown ``log_level``, or the address cannot be used (see :func:`bind`).
    """
    if log_level not in LOG_LEVELS:
        raise InputError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    app = create_app(bank, **limits)
    import uvicorn

    if sock is None:
        sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    url = _url(str(bound_host), bound_port)
    names = ", ".join(sorted(bank.tasks)) or "none"

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # accepting connections now
                log.info("listening on %s, %d task(s): %s", url, len(bank.tasks), names)

    config = uvicorn.Config(app, host=host, port=bound_port, log_level=log_level)
    try:
        _Server(config).run(sockets=[sock])
    finally:
        sock.close()
