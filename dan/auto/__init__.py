"""``--backend auto``, one meaning everywhere: the fastest runtime of a model here that agrees with PyTorch.

- :mod:`dan.auto.open`: :func:`open_backend`, how every command and the Python ``Predictor`` open a model
  file (a runtime by name, or ``auto``), and :func:`fastest_backend`, the candidates of a checkpoint
  (PyTorch, ONNX Runtime and OpenVINO, float32 and int8, from the export cache);
- :mod:`dan.auto.race`: the timed race among them and what "agrees" means (float32: within float32
  rounding of the logits' scale; int8: top-1 on probe faces), cached once per machine and model.

This layer sits above :mod:`dan.runtime` and :mod:`dan.export` (the ONNX candidate needs an export) and
below :mod:`dan.inference` and the command line, so the runtime never imports export.
"""

from __future__ import annotations

from dan.auto.open import fastest_backend, open_backend

__all__ = ["fastest_backend", "open_backend"]
