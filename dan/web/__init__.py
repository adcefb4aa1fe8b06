"""DAN in the browser, no server: the static page folder ``dan export --web`` writes.

- :mod:`dan.web.ortweb`: onnxruntime-web's files at a pinned version, fetched once with npm (or taken
  from a tarball the user gives), checked against the pinned SHA-512 and kept in ``$DAN_HOME``;
- :mod:`dan.web.site`: the folder: the page (``static/``: plain ES modules, no build step), the model
  and its record, YuNet, the runtime.

The page finds faces with YuNet, aligns and prepares each one exactly as ``dan predict`` does (the
pixel operations of :mod:`dan.inference` and :mod:`dan.preprocess`, ported in ``static/vision.js`` and
``static/yunet.js``), and runs the model in a Web Worker: WebGPU, else WASM SIMD with threads when the
page is cross-origin isolated, else WASM on one thread. No frame leaves the visitor's machine.
"""

from dan.web.ortweb import ort_web_files
from dan.web.site import write_site

__all__ = ["ort_web_files", "write_site"]
