"""The static folder ``dan export --web`` writes: the page, the model, YuNet and onnxruntime-web.

Layout of the folder (every path relative, so it works from any static host, in any sub-path)::

    index.html  style.css  app.js  worker.js  vision.js  yunet.js  sw.js   the page (plain ES modules)
    model.onnx  model.json                                                the DAN export and its record
    yunet.onnx                                                            OpenCV Zoo's YuNet, any input size
    ort/                                                                  onnxruntime-web, pinned, MIT

``model.json`` holds what the page needs of the model's ``dan`` metadata entry (labels, preprocessing,
temperature), the detector settings dan uses (:data:`DETECTION`) and a build id that names the
browser's cache of this folder (a new export is fetched anew). The folder is written beside its
destination and renamed into place; a folder there already is replaced only when an earlier
``dan export --web`` wrote it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from dan import __version__
from dan.errors import DanError, one_line
from dan.inference.detectors import YUNET_MODEL
from dan.opencv import DEFAULT_MAX_PIXELS
from dan.web.ortweb import FILES, VERSION

__all__ = ["DETECTION", "PAGE_FILES", "write_site"]

STATIC = Path(__file__).parent / "static"
PAGE_FILES = ("index.html", "style.css", "app.js", "worker.js", "vision.js", "yunet.js", "imagesize.js", "sw.js")
DETECTION = {"detect_size": 640, "score_threshold": 0.7, "nms_threshold": 0.3, "top_k": 5000}
"""dan's YuNet settings (:class:`dan.inference.detectors.YuNetDetector` defaults), the page's too."""
MARKER = "model.json"


def dynamic_yunet(dest: Path) -> None:
    """YuNet with its input's height and width (and its outputs' cell count) left free, as OpenCV runs it.

    The 2023mar file declares a 640 x 640 input; its graph (convolutions, 2x resizes, reshapes to
    ``[1, -1, k]``) runs at any size that is a multiple of 32, which is how ``cv2.FaceDetectorYN`` pads
    a frame. onnxruntime checks declared sizes, so the page's copy declares them free.
    """
    import onnx

    model = onnx.load(str(YUNET_MODEL))
    dims = model.graph.input[0].type.tensor_type.shape.dim  # (1, 3, H, W)
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for out in model.graph.output:  # (1, cells, k), the cells of one stride
        out.type.tensor_type.shape.dim[1].dim_param = f"cells_{out.name.rpartition('_')[2]}"
    del model.graph.value_info[:]  # the 640 x 640 intermediate shapes: onnxruntime infers them
    onnx.save(model, str(dest))


def _record(model: Path) -> dict:
    """What the page needs of the model file's metadata (read and checked by the ONNX runtime)."""
    from dan.runtime.onnx import OnnxBackend, is_int8

    backend = OnnxBackend(model)
    meta = backend.metadata
    return {
        "labels": list(backend.labels),
        "preprocessing": backend.preprocessing.to_dict(),
        "temperature": float(meta.temperature) if meta.temperature is not None else 1.0,
        "int8": is_int8(model),
        "input": backend.input_name,
        "logits": backend.output_names[0],
        "trained_on": meta.trained_on,
    }


def _build_id(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()):
        digest.update(name.encode())
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:16]


def write_site(folder: str | os.PathLike, model: str | os.PathLike, ort_dir: Path, title: str = "DAN") -> Path:
    """Write the static page folder for the ONNX ``model`` (float32 or int8) at ``folder``.

    Args:
        folder: Destination; created, or replaced when an earlier ``dan export --web`` wrote it.
        model: A DAN ONNX export (with its ``dan`` metadata).
        ort_dir: onnxruntime-web's verified files (:func:`dan.web.ortweb.ort_web_files`).
        title: What the page calls the model.

    Returns:
        The folder.

    Raises:
        DanError: The destination is a file or a folder dan did not write, the model is not a DAN
            ONNX export, or the folder cannot be written.
    """
    folder, model = Path(folder), Path(model)
    if folder.exists() and not folder.is_dir():
        raise DanError(f"{folder}: is a file, not a folder for the web page")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MARKER).is_file():
        raise DanError(f"{folder}: not empty and not a page dan export --web wrote: choose another folder")
    record = _record(model)
    parent = folder.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{folder.name}-", dir=parent) as tmp:
            new = Path(tmp) / "site"
            new.mkdir()
            for name in PAGE_FILES:
                shutil.copyfile(STATIC / name, new / name)
            shutil.copyfile(model, new / "model.onnx")
            dynamic_yunet(new / "yunet.onnx")
            (new / "ort").mkdir()
            for name in (*FILES, "LICENSE"):
                shutil.copyfile(ort_dir / name, new / "ort" / name)
            build = _build_id(new)
            info: dict[str, object] = {"title": title, "dan": __version__, "ort_web": VERSION, "build": build}
            info |= {"detection": DETECTION, "max_pixels": DEFAULT_MAX_PIXELS}
            (new / MARKER).write_text(json.dumps({**info, **record}, indent=1), encoding="utf-8")
            old = Path(tmp) / "old"
            if folder.is_dir():
                os.replace(folder, old)
            os.replace(new, folder)
            with contextlib.suppress(OSError):
                shutil.rmtree(old)
    except OSError as err:
        raise DanError(f"{folder}: cannot write the web page: {one_line(err, 160)}") from None
    return folder
