"""`attnlab serve`: a local web app to type a text and see its attention."""

from __future__ import annotations

import argparse
import sys

from attnlab.cli import _checks, _model
from attnlab.cli._model import MODEL_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="a local web app: type a text (or two), pick a model, see its attention",
        description=(
            "Start a web app on http://127.0.0.1:PORT: type a text (a second one to compare), "
            "choose a model, and see its attention on the same interactive page as `attnlab show "
            "-o x.html` (head, model and heatmap views). The bundled all-MiniLM-L6-v2 is always "
            "offered; each --model adds a local model folder or training run. Models are loaded "
            "once at start and chosen in the page by their place in that list: the page can never "
            "name a file. Long documents (up to --max-tokens) show pooled maps, and zooming into a "
            "heatmap fetches exact weights from the server. One worker computes at a time; other "
            "requests wait in line and the page shows their place. Recent results stay in memory "
            "within --cache-mb. Binds to 127.0.0.1 unless --host says otherwise (then it warns: "
            "the server has no authentication). Ctrl-C stops it."
        ),
    )
    p.add_argument("--model", metavar="PATH", action="append", default=[],
                   help=MODEL_HELP + "; repeat for several models")  # fmt: skip
    p.add_argument("--port", type=int, default=8000,
                   help="TCP port (default 8000; 0 picks a free one)")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")  # fmt: skip
    p.add_argument("--max-tokens", type=int, default=4096,
                   help="longest text accepted, in tokens (default 4096; a model's own "
                   "position limit applies too)")  # fmt: skip
    p.add_argument("--max-body-kb", type=int, default=256,
                   help="largest request body in KiB (default 256); larger: 413")  # fmt: skip
    p.add_argument("--cache-mb", type=int, default=1024,
                   help="memory for recent captures, in MB (default 1024); the least recently "
                   "used are dropped first")  # fmt: skip
    p.add_argument("--max-waiting", type=int, default=32,
                   help="requests waiting for the worker (default 32); more: 503")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _checks.number("--port", args.port, at_least=0, at_most=65535)
    _checks.number("--max-tokens", args.max_tokens, at_least=1)
    _checks.number("--max-body-kb", args.max_body_kb, at_least=1)
    _checks.number("--cache-mb", args.cache_mb, at_least=1)
    _checks.number("--max-waiting", args.max_waiting, at_least=1)
    _checks.text("--host", args.host)
    for path in args.model:
        _model.check_path("--model", path)
    from attnlab.serve.app import LOOPBACK_NAMES, Limits, create_app
    from attnlab.serve.models import load_models
    from attnlab.serve.server import bind, is_loopback, run

    sock = bind(args.host, args.port)  # a taken port is an error before any model loads
    try:
        loopback = is_loopback(args.host)
        if not loopback:
            print(f"attnlab serve: warning: --host {args.host} lets other machines reach this "
                  "server, which has no authentication: anyone who can connect can run the "
                  "models on texts of their choosing", file=sys.stderr)  # fmt: skip
        names = ", ".join(["all-MiniLM-L6-v2", *args.model])
        print(f"loading {names}…", flush=True)
        models = load_models(args.model)
        limits = Limits(
            max_body=args.max_body_kb * 1024, max_tokens=args.max_tokens,
            cache_bytes=args.cache_mb * 2**20, max_waiting=args.max_waiting,
        )  # fmt: skip
        app = create_app(models, limits, allowed_hosts=LOOPBACK_NAMES if loopback else ["*"])
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        run(app, sock, on_ready=lambda: print(f"serving on http://{shown}:{port}/ (Ctrl-C stops)",
                                              flush=True))  # fmt: skip
    finally:
        sock.close()
    return 0
