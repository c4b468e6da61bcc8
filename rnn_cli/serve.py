"""`rnn serve`: a trained run over HTTP, speaking TensorFlow Serving's REST predict API, with the
word-by-word trace of `rnn explain` and a web page that shows it.

Starlette on uvicorn, not FastAPI: the API is four routes whose bodies are checked by hand to give
TensorFlow Serving's answers (`{"error": ...}` with its status codes); FastAPI's request models would
add pydantic and answer bad bodies in a shape of their own, to be rewritten.

The model runs in one worker thread, so requests never share it at once. Requests that arrive while a
batch is running wait and go together in the next (up to MAX_INSTANCES texts): nothing waits when
the server is idle, and under load one model call serves many requests (docs/performance.md).
`/v1/explain` reads the weights through the NumPy reference in a thread of its own, with at most
EXPLAIN_QUEUE waiting: a long review's trace never holds up predictions.

Who may call it: a POST must say `Content-Type: application/json` (a web page on another site can send
a "simple" cross-site POST, which cannot), and on a loopback address the Host header must name loopback
(a page whose domain is re-pointed at 127.0.0.1, DNS rebinding, cannot read the answers).

One module, if over 300 lines: the routes, the batcher they share, the guard in front of them and the
server's start and stop are one piece, each part small and read with the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from rnn_cli import loading
from rnn_cli.card import model_facts
from rnn_cli.errors import UserError
from rnn_cli.explain import explain_review
from rnn_cli.parsing import excerpt, load_json
from rnn_cli.predict import predict_texts

MAX_BODY = 1 << 20  # bytes of a request body
MAX_INSTANCES = 256  # texts in one predict request
TOP = 5  # movers listed by /v1/explain
EXPLAIN_QUEUE = 4  # explain requests waiting for their thread beyond the one running; more get 503
SHUTDOWN_GRACE = 3  # seconds requests in flight get to finish after Ctrl-C or SIGTERM; then they are cut
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
JSON_TYPES = {int: "a number", float: "a number", bool: "a boolean", type(None): "null", dict: "an object",
              list: "an array", str: "a string"}


class BadRequest(Exception):
    """A request the server refuses: its HTTP status and one line saying why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Batcher:
    """Runs predictions in one worker thread; requests that queue up while a batch runs are joined
    into the next. `batching=False`: each request alone, in arrival order."""

    def __init__(self, trained: loading.Trained, batching: bool = True):
        self.trained, self.batching = trained, batching
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None

    async def run(self, function, *args):
        """`function(*args)` in the model's thread."""
        return await asyncio.get_running_loop().run_in_executor(self.worker, function, *args)

    async def predict(self, texts: list[str]) -> list[dict]:
        if not self.batching:
            return await self.run(predict_texts, self.trained, texts)
        if self.task is None:
            self.queue, self.task = asyncio.Queue(), asyncio.create_task(self.join_requests())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def join_requests(self) -> None:
        while True:
            jobs = [await self.queue.get()]
            while not self.queue.empty() and sum(len(texts) for texts, _ in jobs) < MAX_INSTANCES:
                jobs.append(self.queue.get_nowait())
            try:
                results = await self.run(predict_texts, self.trained, [t for texts, _ in jobs for t in texts])
            except Exception as err:  # noqa: BLE001 - every waiting request gets the error
                for _, future in jobs:
                    future.set_exception(err)
                continue
            for texts, future in jobs:
                future.set_result(results[:len(texts)])
                results = results[len(texts):]

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.worker.shutdown(wait=True)


def prediction(result: dict, classes: tuple[str, ...]) -> dict:
    """One instance's answer: `predict_texts`' result with every class's probability as a list in
    the model's class order (as the exported SavedModel gives it)."""
    p = result["probability"]
    if p is None:
        probabilities = None
    elif len(classes) == 2:
        probabilities = [1 - p, p]
    else:
        probabilities = [result["probabilities"][name] for name in classes]
    return {"probability": p, "probabilities": probabilities, "label": result["label"], "words": result["words"],
            "known_words": result["known_words"], "truncated": result["truncated"], "note": result["note"]}


async def read_body(request: Request) -> object:
    """The request's JSON, refused when over MAX_BODY bytes (413) or not JSON (400)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise BadRequest(413, f"the body is {int(declared):,} bytes; at most {MAX_BODY:,} are accepted")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise BadRequest(413, f"the body is over {MAX_BODY:,} bytes; at most {MAX_BODY:,} are accepted")
    except ClientDisconnect:  # the client left mid-body: nobody to answer, nothing to log
        raise BadRequest(400, "the client disconnected before its body was sent") from None
    try:
        return load_json(bytes(body), "the body")
    except UserError as err:  # nested too deeply
        raise BadRequest(400, str(err)) from None
    except ValueError as err:
        raise BadRequest(400, f"the body is not JSON: {err}") from None


def instances_of(payload: object) -> list[str]:
    """The texts of a TensorFlow Serving predict request, `{"instances": ["text", ...]}`."""
    if not isinstance(payload, dict) or "instances" not in payload:
        raise BadRequest(400, 'expected a JSON object {"instances": ["a text", ...]}')
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise BadRequest(400, "instances: expected a list of one or more texts")
    if len(instances) > MAX_INSTANCES:
        raise BadRequest(422, f"instances: {len(instances)} texts; at most {MAX_INSTANCES} per request")
    for i, text in enumerate(instances):
        if not isinstance(text, str):
            raise BadRequest(400, f"instances[{i}]: expected a string, got {JSON_TYPES[type(text)]} {json.dumps(text)[:40]}")
    return instances


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) is this machine's loopback."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def refusal(scope: dict, loopback: bool) -> BadRequest | None:
    """Why a request may not reach the model (its Host or Content-Type), if it may not."""
    headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
    if loopback:
        host = headers.get("host", "")
        name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        if name.lower() not in LOOPBACK_NAMES:
            return BadRequest(403, f"Host {host[:80]!r}: this server answers requests to localhost only (it listens "
                                   f"on a loopback address); a page of another site cannot call it")
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    if scope["method"] == "POST" and kind != "application/json":
        return BadRequest(415, f"Content-Type {kind[:80] or 'missing'!r}: send the body as JSON, with the header "
                               "Content-Type: application/json")
    return None


class Guard:
    """ASGI middleware: a request `refusal` names gets its JSON error before any route sees it."""

    def __init__(self, app, loopback: bool):
        self.app, self.loopback = app, loopback

    async def __call__(self, scope, receive, send):
        refused = refusal(scope, self.loopback) if scope["type"] == "http" else None
        if refused is None:
            try:
                return await self.app(scope, receive, send)
            except asyncio.CancelledError:  # cut at shutdown (SHUTDOWN_GRACE): no traceback for the log
                refused = BadRequest(503, "the server is shutting down")
        with contextlib.suppress(Exception):  # a client cut off mid-request may no longer take an answer
            await JSONResponse({"error": refused.message}, status_code=refused.status)(scope, receive, send)


def create_app(trained: loading.Trained, batching: bool = True, name: str | None = None,
               host: str = "127.0.0.1") -> Starlette:
    """The application: routes, error bodies, the batcher's life; `name`: the model's in the URLs (default:
    its config's name); `host`: the address it listens on (loopback: the Host header must say so)."""
    name = name or trained.config.name
    batcher = Batcher(trained, batching)
    explainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explain")
    explaining = 0  # requests in the explain thread or waiting for it
    facts = model_facts(trained)  # read once: the run folder may change while it serves
    page = resources.files("rnn_cli").joinpath("page.html").read_text(encoding="utf-8")

    def check_model(request: Request) -> None:
        asked = request.path_params["name"]
        if asked.endswith(":predict"):  # a GET of the predict route, read as a model's status
            raise BadRequest(405, f"{request.url.path} takes POST, with a body {{\"instances\": [...]}}")
        if asked != name:
            raise BadRequest(404, f"no model named {excerpt(asked)}: this server serves {name!r}")
        if request.path_params.get("version", "1") != "1":
            raise BadRequest(404, f"model {name!r} has one version, 1")

    async def predict(request: Request) -> JSONResponse:
        check_model(request)
        texts = instances_of(await read_body(request))
        results = await batcher.predict(texts)
        return JSONResponse({"predictions": [prediction(r, trained.classes) for r in results]})

    async def explain(request: Request) -> JSONResponse:
        payload = await read_body(request)
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            raise BadRequest(400, 'expected a JSON object {"text": "a review"} (and optionally "class")')
        traced = payload.get("class")
        if traced is not None and not isinstance(traced, str):
            raise BadRequest(400, "class: expected a class name (a string)")
        nonlocal explaining
        if explaining > EXPLAIN_QUEUE:
            raise BadRequest(503, f"{explaining} explanations are under way or waiting; try again in a moment")
        explaining += 1
        try:
            explanation = await asyncio.get_running_loop().run_in_executor(
                explainer, explain_review, trained, payload["text"], traced)
        except UserError as err:
            raise BadRequest(400, str(err).replace("--class", "class")) from None
        finally:
            explaining -= 1
        return JSONResponse({**explanation.as_dict(TOP), "maxlen": explanation.maxlen,
                             "truncating": explanation.truncating})

    async def status(request: Request) -> JSONResponse:
        check_model(request)
        return JSONResponse({"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                                       "status": {"error_code": "OK", "error_message": ""}}]})

    async def metadata(request: Request) -> JSONResponse:
        check_model(request)
        data = trained.config.data
        return JSONResponse({"model_spec": {"name": name, "version": "1"},
                             "metadata": {"model": facts, "classes": list(trained.classes), "maxlen": data.maxlen,
                                          "truncating": data.truncating, "input": "instances: texts",
                                          "outputs": ["probability", "probabilities", "label", "words",
                                                      "known_words", "truncated", "note"]}})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": name, "classes": list(trained.classes)})

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def refused(request: Request, err: BadRequest) -> JSONResponse:
        return JSONResponse({"error": err.message}, status_code=err.status)

    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"error": err.detail}, status_code=err.status_code)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        batcher.close()
        explainer.shutdown(wait=False, cancel_futures=True)

    routes = [Route("/", index), Route("/healthz", healthz),
              Route("/v1/models/{name}", status), Route("/v1/models/{name}/versions/{version}", status),
              Route("/v1/models/{name}/metadata", metadata),
              Route("/v1/models/{name}:predict", predict, methods=["POST"]),
              Route("/v1/models/{name}/versions/{version}:predict", predict, methods=["POST"]),
              Route("/v1/explain", explain, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(Guard, loopback=is_loopback(host))],
                     exception_handlers={BadRequest: refused, HTTPException: http_error})


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (0: any free port), or one line saying why it cannot be."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP named: asyncio turns Nagle's algorithm off only on sockets that say so; left on,
        # each response's body waited for the client's delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # from here a client's connection waits for the server, never refused
    except OSError as err:
        raise UserError(f"--host {host} --port {port}: cannot listen there ({err.strerror or err}); "
                        f"pick another port, or a host address of this machine") from None
    return sock


def curl_line(url: str, name: str) -> str:
    """The shell command that asks the server at `url` for model `name`'s prediction of one review."""
    body = json.dumps({"instances": ["A moving, beautifully acted film."]})
    return f"curl -H 'Content-Type: application/json' -d '{body}' {url}/v1/models/{name}:predict"


def warm_up(trained: loading.Trained) -> None:
    """Trace the predict step before the first request, for any batch size and length: TensorFlow traces
    a shape anew until it has seen a dimension change, then keeps one trace that takes any size there,
    so three calls that change the rows, then the length, leave no request waiting for a trace."""
    word = trained.vocabulary.words[0] if trained.vocabulary.words else "the"  # a word it knows: scored
    short, long = word, " ".join([word] * trained.config.data.maxlen)
    for texts in ([short], [short, short], [long, long, long]):
        predict_texts(trained, texts)


def serve(run_dir: Path, host: str, port: int, batching: bool = True, name: str | None = None,
          echo=print, warn=print) -> None:
    """Serve the run until Ctrl-C or SIGTERM, as model `name` (default: its config's name); requests in flight
    are answered first."""
    trained = loading.Trained.load(run_dir)
    sock = listen(host, port)
    # Requests of every size and length trace the predict step anew until TensorFlow generalises its
    # shapes; its warnings about that are not the user's to act on.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warm_up(trained)
    name = name or trained.config.name
    server = uvicorn.Server(uvicorn.Config(create_app(trained, batching, name, host), log_level="warning",
                                           lifespan="on", timeout_graceful_shutdown=SHUTDOWN_GRACE))
    address = f"[{host}]" if ":" in host else host
    url = f"http://{address}:{sock.getsockname()[1]}"
    echo(f"serving {name} ({run_dir}) at {url}/  (Ctrl-C stops)")
    echo(f"  POST {url}/v1/models/{name}:predict   POST {url}/v1/explain   GET {url}/healthz")
    echo(f"try: {curl_line(url, name)}")
    if not is_loopback(host):
        warn(f"warning: --host {host} lets other machines call this server, which asks no one who they are")
    with contextlib.closing(sock):
        server.run(sockets=[sock])
