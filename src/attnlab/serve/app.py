"""The web app of `attnlab serve` (Starlette): the form page, the job API, result pages and
exact tiles. Routes:

    GET  /                 the page: a text box (a second one for comparison), the model list
    GET  /assets/NAME      the page's script and style (a fixed list of names; nothing else)
    POST /api/jobs         {"model": index, "text": ..., "compare"?: ..., "target"?: ...} → a job
    GET  /api/jobs/ID      where the job stands: queued (with how many ahead), running (what it
                           does), done (the result's URL) or error (the message)
    GET  /view/KEY         the result: the same interactive page as `attnlab show -o x.html`
    GET  /api/tile/KEY     ?text&layer&head&q0&q1&k0&k1: exact weights of a block (float32 bytes)

Safety: the browser chooses a model by its index in the list made at start, never by a path;
request bodies, token counts and the line of waiting jobs are limited with messages that say
which limit and by how much; hosts other than the loopback names are refused unless the server
was bound elsewhere on purpose; every response forbids loading anything from other origins.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request as HTTPRequest
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from attnlab.serve.cache import CaptureCache
from attnlab.serve.models import ServedModel
from attnlab.serve.queue import Job, QueueFullError, WorkQueue
from attnlab.serve.results import Request, Result, compute, tile

__all__ = ["ASSETS", "LOOPBACK_NAMES", "Limits", "create_app"]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
ASSETS = {"serve.js": "text/javascript", "serve.css": "text/css"}  # the only files served
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
        "'unsafe-inline'; img-src 'self' data:; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
FIELDS = ("model", "text", "compare", "target")


@dataclass(frozen=True)
class Limits:
    max_body: int = 256 * 1024  # bytes of one request body
    max_tokens: int = 4096  # tokens of one text (the model's own limit applies too)
    cache_bytes: int = 1024 * 2**20  # captures kept for result pages and tiles
    max_waiting: int = 32  # jobs waiting for the worker


class BodyTooLargeError(ValueError):
    pass


def create_app(models: Sequence[ServedModel], limits: Limits = Limits(), *,
               allowed_hosts: Sequence[str] = LOOPBACK_NAMES) -> Starlette:  # fmt: skip
    """The app serving ``models`` (chosen in the page by their index) within ``limits``.
    ``allowed_hosts``: the Host names accepted ("*" for any), the loopback names by default, so
    a web page elsewhere cannot reach the server through a rebound DNS name."""
    if not models:
        raise ValueError("serve needs at least one model")
    models = list(models)
    cache = CaptureCache(limits.cache_bytes)
    queue = WorkQueue(max_waiting=limits.max_waiting)
    running: dict[str, Job] = {}  # request key → its capture job while queued or running

    @contextlib.asynccontextmanager
    async def lifespan(app):
        queue.start()
        yield
        queue.stop()

    async def index(request: HTTPRequest) -> Response:
        config = {"models": [m.describe() for m in models], "max_body": limits.max_body,
                  "max_tokens": limits.max_tokens}  # fmt: skip
        return HTMLResponse(_index_page(config), headers=HEADERS)

    async def asset(request: HTTPRequest) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return _not_found(f"no asset {name!r}")
        text = (resources.files("attnlab.serve") / "assets" / name).read_text(encoding="utf-8")
        return Response(text, media_type=ASSETS[name], headers=HEADERS)

    async def submit(request: HTTPRequest) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return _error(415, f"the body must be JSON (Content-Type: application/json); got "
                               f"{media or 'no Content-Type'}")  # fmt: skip
        try:
            body = await _read_body(request, limits.max_body)
        except BodyTooLargeError as err:
            return _error(413, str(err))
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return _error(400, f"the body is not valid JSON: {err}")
        try:
            job_request = _parse(data, models)
            _check_tokens(job_request, models[job_request.model], limits.max_tokens)
        except ValueError as err:
            return _error(422, str(err))
        key = job_request.key
        if cache.get(key) is not None:
            return JSONResponse({"state": "done", "view": f"/view/{key}"}, headers=HEADERS)
        job = running.get(key)
        if job is None or job.state not in ("queued", "running"):
            served = models[job_request.model]

            def work(progress, r=job_request, served=served) -> str:
                result = compute(r, served, tiles_url=f"/api/tile/{r.key}", progress=progress)
                cache.put(r.key, result)
                return r.key

            try:
                job = queue.submit(work, label=key)
            except QueueFullError as err:
                return _error(503, str(err), headers={"Retry-After": "2"})
            running[key] = job
            for stale in [k for k, j in running.items() if j.state in ("done", "error")]:
                running.pop(stale, None)
        return JSONResponse(_status(job), status_code=202, headers=HEADERS)

    async def job_status(request: HTTPRequest) -> Response:
        job = queue.get(request.path_params["job"])
        if job is None:
            return _error(404, f"no job {request.path_params['job']!r} (finished jobs are "
                               "forgotten after a while; submit the text again)")  # fmt: skip
        return JSONResponse(_status(job), headers=HEADERS)

    def _status(job: Job) -> dict:
        out = {"job": job.id, "state": job.state}
        if job.state == "queued":
            ahead = queue.ahead(job)
            out |= {"ahead": ahead, "progress": f"waiting: {ahead} request(s) ahead"}
        elif job.state == "running":
            out["progress"] = job.progress
        elif job.state == "done":
            out |= {"view": f"/view/{job.label}", "seconds": round(job.finished - job.submitted, 3)}
        else:
            out["error"] = _describe(job.future.exception())
        return out

    async def view(request: HTTPRequest) -> Response:
        result = cache.get(request.path_params["key"])
        if result is None:
            return HTMLResponse(
                "<!DOCTYPE html><meta charset='utf-8'><title>not found</title><p>No such result: "
                "it was never computed here, or it left the cache (its memory budget, attnlab "
                "serve --cache-mb). Submit the text again.</p>", status_code=404, headers=HEADERS,
            )  # fmt: skip
        return Response(result.page, media_type="text/html; charset=utf-8", headers=HEADERS)

    async def tiles(request: HTTPRequest) -> Response:
        result = cache.get(request.path_params["key"])
        if result is None:
            return _error(404, "no such result: it left the cache (its memory budget, attnlab "
                               "serve --cache-mb); submit the text again")  # fmt: skip
        try:
            args = _tile_args(request.query_params)
        except ValueError as err:
            return _error(422, str(err))
        try:
            job = queue.submit(lambda _progress: _tile_bytes(result, args), label="tile")
        except QueueFullError as err:
            return _error(503, str(err), headers={"Retry-After": "1"})
        try:
            data, shape = await asyncio.wrap_future(job.future)
        except ValueError as err:
            return _error(422, str(err))
        return Response(data, media_type="application/octet-stream",
                        headers={**HEADERS, "X-Tile-Shape": f"{shape[0]},{shape[1]}",
                                 "Cache-Control": "no-store"})  # fmt: skip

    routes = [
        Route("/", index),
        Route("/assets/{name}", asset),
        Route("/favicon.ico", lambda request: Response(status_code=204)),  # none; no 404 noise
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/jobs/{job}", job_status),
        Route("/view/{key}", view),
        Route("/api/tile/{key}", tiles),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.cache, app.state.queue, app.state.models = cache, queue, models
    return app


def _parse(data: object, models: list[ServedModel]) -> Request:
    """The request in a job body, every field checked (a ValueError names the field)."""
    if not isinstance(data, dict):
        raise ValueError(f"the body must be a JSON object with fields {FIELDS}; got "
                         f"{type(data).__name__}")  # fmt: skip
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; the fields are {FIELDS}")
    model = data.get("model", 0)
    if not isinstance(model, int) or isinstance(model, bool) or not 0 <= model < len(models):
        shown = repr(model) if len(repr(model)) <= 60 else repr(model)[:57] + "..."
        raise ValueError(
            f"model must be an index in [0, {len(models)}) into the server's model list (models "
            f"are named at start, never by the page); got {shown}"
        )
    texts = {}
    for name in ("text", "compare", "target"):
        value = data.get(name)
        if value is None and name != "text":
            continue
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty text; got {_short(value)}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(f"{name} is not valid UTF-8: a lone surrogate at character "
                             f"{err.start}") from None  # fmt: skip
        texts[name] = value
    served = models[model]
    if "target" in texts and not served.encoder_decoder:
        raise ValueError(f"target is the decoder side of encoder–decoder models; {served.name} "
                         "has one stack (put everything in text)")  # fmt: skip
    return Request(model, texts["text"], texts.get("compare"), texts.get("target"))


def _check_tokens(request: Request, served: ServedModel, max_tokens: int) -> None:
    texts, targets = served.limits
    fields = [("text", request.text, False), ("compare", request.compare, False),
              ("target", request.target, True)]  # fmt: skip
    for name, value, target in fields:
        if value is None:
            continue
        limit, why = max_tokens, "this server's limit (attnlab serve --max-tokens)"
        positions = targets if target else texts
        if positions is not None and positions < limit:
            limit, why = positions, f"the positions of {served.name}"
        n = served.count_tokens(value, target=target)
        if n > limit:
            with_start = " with the decoder's start token" if target else ""
            raise ValueError(f"{name} is {n:,} tokens long{with_start}; at most {limit:,} are "
                             f"taken ({why})")  # fmt: skip


def _tile_args(params) -> tuple[int, int, int, tuple[int, int], tuple[int, int]]:
    values = {}
    for name in ("text", "layer", "head", "q0", "q1", "k0", "k1"):
        raw = params.get(name)
        if raw is None or not raw.isdigit() or len(raw) > 9:
            raise ValueError(f"{name} must be a non-negative integer; got {_short(raw)}")
        values[name] = int(raw)
    v = values
    return v["text"], v["layer"], v["head"], (v["q0"], v["q1"]), (v["k0"], v["k1"])


def _tile_bytes(result: Result, args) -> tuple[bytes, tuple[int, int]]:
    weights = tile(result, *args)
    return weights.numpy().astype("<f4").tobytes(), tuple(weights.shape)


async def _read_body(request: HTTPRequest, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed ``limit`` bytes (from its
    Content-Length, or while it streams in)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise BodyTooLargeError(
            f"the request body is {int(length):,} bytes; the limit is {limit:,} bytes (attnlab "
            "serve --max-body-kb)"
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(
                f"the request body exceeds the limit of {limit:,} bytes (attnlab serve "
                "--max-body-kb)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _index_page(config: dict) -> str:
    data = json.dumps(config, ensure_ascii=True)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    title = html.escape("attnlab serve: attention in your browser")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><link rel='icon' href='data:,'>"
        "<link rel='stylesheet' href='/assets/serve.css'></head><body>"
        f"<h1>{title}</h1><form id='form' autocomplete='off'>"
        "<label>model <select id='model' name='model'></select></label>"
        "<label class='box'>text <textarea id='text' rows='4' required "
        "placeholder='The animal didn’t cross the street because it was tired'></textarea></label>"
        "<label class='box'>second text, to compare (optional) <textarea id='compare' rows='2'>"
        "</textarea></label>"
        "<label class='box' id='target-box' hidden>target: the decoder's side (optional) "
        "<textarea id='target' rows='2'></textarea></label>"
        "<div class='actions'><button id='submit' type='submit'>show attention</button>"
        "<span id='status' role='status'></span><a id='open' hidden target='_blank' "
        "rel='noopener'>open in its own tab</a></div></form>"
        "<iframe id='result' title='attention' hidden></iframe>"
        f"<script type='application/json' id='serve-config'>{data}</script>"
        "<script src='/assets/serve.js'></script></body></html>\n"
    )


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    headers = {**HEADERS, **(headers or {})}
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _not_found(message: str) -> Response:
    return PlainTextResponse(f"not found: {message}", status_code=404, headers=HEADERS)


def _short(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _describe(err: BaseException | None) -> str:
    if isinstance(err, (ValueError, OSError)):
        return " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {err}"
