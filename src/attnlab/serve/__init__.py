"""`attnlab serve`: a local web app to type a text and see its attention, on the same page as
`attnlab show`, with exact tiles of long documents computed on demand as the user zooms.

    from attnlab.serve import create_app, load_models
    app = create_app(load_models(["path/to/model"]))   # an ASGI app (Starlette)

Modules: :mod:`.models` (the models offered, chosen by index), :mod:`.results` (captures and
exact tiles), :mod:`.cache` (recent captures within a memory budget), :mod:`.queue` (one
worker, requests in line), :mod:`.app` (routes and limits), :mod:`.server` (uvicorn)."""

from attnlab.serve.app import Limits, create_app
from attnlab.serve.models import ServedModel, load_models

__all__ = ["Limits", "ServedModel", "create_app", "load_models"]
