"""Released models by name: a verified, pinned, atomic, locked download cache (the package's only network code).

The modules: :mod:`dan.hub.catalogue` (what is fetched by name), :mod:`dan.hub.specs` (what a spec names
and where it is cached), :mod:`dan.hub.fetch` (the way in: :func:`resolve_checkpoint`), :mod:`dan.hub.transport`
(the transports) and :mod:`dan.hub.records` (locks and SHA-256 pins). This file only names the public API.

A checkpoint *spec* is one of:

- an existing local file: used as it is, no network;
- a released model name (:data:`RELEASED`: ``rafdb``, ``affectnet7``, ``affectnet8``): the reference
  implementation's files, fetched once from Google Drive into ``<dan_home>/models/<file name>``;
  a released backbone's name (:data:`BACKBONES`: ``msceleb``) is refused in one line: it is
  ``model.backbone_weights``' to fetch (:func:`resolve_backbone`), through this same cache;
- an ``https://`` or ``http://`` URL: fetched once into ``<dan_home>/models/<name>-<hash><suffix>``;
- ``hf://owner/repo/path/in/repo[@revision]``: fetched with ``huggingface_hub`` and copied into the same
  cache; the names are checked first (Hugging Face's rules, no ``..`` segment anywhere).

A download goes into a temporary file in the cache folder (:func:`dan.fileio.temp_path_for`), is checked
(not empty, not a web page, its SHA-256 against the pin when there is one, then the caller's ``verify``
callback) and published with :func:`dan.fileio.publish`, so the cache never holds a partial or unverified
file; its SHA-256 is then recorded beside it (``<file>.sha256``). Every later use checks the cached file
against the catalogue's pin (:attr:`ReleasedModel.sha256`) or else that record (:mod:`dan.hub.records`); a
file found in the cache with neither (put there by hand) is checked by ``verify``, accepted with a notice,
and recorded. A lock (``<file>.lock``, removed after use) makes a second process wait for the first and
then use its file. Any failure is one :class:`~dan.errors.DanError` line naming the URL and the path
where the file can be put by hand.
"""

from __future__ import annotations

from dan.hub.catalogue import BACKBONES, RELEASED, ReleasedBackbone, ReleasedModel
from dan.hub.fetch import list_backbones, list_released, remove_cached, resolve_backbone, resolve_checkpoint
from dan.hub.specs import cached_path, is_remote, released_model

__all__ = [
    "BACKBONES",
    "RELEASED",
    "ReleasedBackbone",
    "ReleasedModel",
    "cached_path",
    "is_remote",
    "list_backbones",
    "list_released",
    "released_model",
    "remove_cached",
    "resolve_backbone",
    "resolve_checkpoint",
]
