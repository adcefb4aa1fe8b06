"""``dan serve``: a live webcam page and an HTTP API around one shared :class:`dan.inference.Predictor`.

- ``GET /``: the page (plain HTML, JS and CSS shipped in ``static/``; no build step, no network).
- ``POST /v1/predict``: label every face of an uploaded image; ``GET /v1/model``; ``GET /health``.
- ``WS /v1/live``: camera frames in, tracked and smoothed faces out; the newest frame wins.

Example::

    from dan.inference import Predictor
    from dan.serve import create_app
    app = create_app(Predictor("model.pt"), token="s3cret")      # run it with uvicorn

This package needs the ``serve`` extra (``pip install 'dan-fer[serve]'``: FastAPI, uvicorn, websockets,
python-multipart); it imports only :mod:`dan.inference`, :mod:`dan.imaging` and the ground floor
(:mod:`dan.errors`, :mod:`dan.vocab`).
"""

from __future__ import annotations

from dan.serve.app import create_app

__all__ = ["create_app"]
