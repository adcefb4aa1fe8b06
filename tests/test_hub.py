"""Released models by name (dan.hub): download, verification, cache, locking and messages, all on loopback."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dan
from dan import DanError, hub, paths
from dan.cli.main import main as dan_main
from dan.hub import specs
from dan.runtime.download_check import download_check
from dan.runtime.loader import load_backend

pytest_plugins = ["hubserver"]  # the loopback server and the private cache: fixtures
RAFDB = hub.RELEASED["rafdb"]


def point(monkeypatch: pytest.MonkeyPatch, name: str, url: str, **changes: object) -> str:
    """Point the released entry ``name`` at ``url`` (and change other fields, such as ``sha256``)."""
    monkeypatch.setitem(hub.RELEASED, name, dataclasses.replace(hub.RELEASED[name], url=url, **changes))
    return url


def _leftovers(folder: Path) -> list[str]:
    """Everything in the cache folder, lock files too (none may be left behind)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _entry(name: str) -> list[str]:
    """A cache entry: the file and its SHA-256 sidecar."""
    return [name, f"{name}.sha256"]


def _fetch(spec: str) -> Path:
    return hub.resolve_checkpoint(spec, verify=download_check(spec), progress=False)


def test_dan_home_default_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import platformdirs

    monkeypatch.delenv("DAN_HOME", raising=False)
    assert paths.dan_home() == Path(platformdirs.user_cache_dir("dan"))
    monkeypatch.setenv("DAN_HOME", str(tmp_path))
    assert paths.models_dir() == tmp_path / "models"


def test_released_download_is_cached_and_reused_without_network(home: Path, server, payloads: dict) -> None:
    path = _fetch("rafdb")
    assert path == home / RAFDB.filename
    assert path.read_bytes() == payloads["good7"]
    assert server.hits == {"/good7.pth": 1}
    assert _leftovers(home) == _entry(RAFDB.filename)
    assert _fetch("rafdb") == path and server.hits == {"/good7.pth": 1}  # second use: no request
    cached = {row["name"]: row["cached"] for row in hub.list_released()}
    assert cached == {"rafdb": path, "affectnet7": None, "affectnet8": None}


def test_released_models_bring_their_preprocessing(home: Path) -> None:
    """The catalogue says how each release's faces were cut out (RAF-DB's aligned, AffectNet's boxes with no
    margin): loaders use it for a model named by its name, and never guess it from a label order."""
    assert dan.load_model("rafdb").preprocessing == hub.RELEASED["rafdb"].preprocessing
    boxes = dan.load_model("affectnet7").preprocessing
    assert (boxes.crop, boxes.margin, boxes.input_size) == ("box", 0.0, 224)
    assert load_backend("affectnet8").preprocessing == hub.RELEASED["affectnet8"].preprocessing == boxes
    local = _fetch("affectnet7")  # the same reference file by its path: nothing says how its faces were cut
    assert dan.load_model(local, labels="affectnet7").preprocessing == dan.Preprocessing()


BAD = {  # route -> (reason through requests, reason through gdown)
    "/truncated.pth": ("transfer ended early: received 1,048,576 of", "transfer ended early: received 1048576 bytes"),
    "/resnet.pth": ("not the reference DAN layout",) * 2,
    "/good8.pth": ("8 classes and 4 heads, not 7 and 4",) * 2,
    "/html.pth": ("sent a web page", "Google Drive refuses the download"),
    "/missing.pth": ("HTTP 404 Not Found",) * 2,
}


@pytest.mark.parametrize("transport", ["requests", "gdown"])
@pytest.mark.parametrize("route", list(BAD))
def test_bad_download_is_one_line_and_leaves_nothing(
    home: Path, server, monkeypatch: pytest.MonkeyPatch, route: str, transport: str
) -> None:
    if transport == "gdown":  # route the loopback URL through gdown, as a Drive URL is
        monkeypatch.setattr(specs, "DRIVE_HOSTS", ("127.0.0.1",))
    url = point(monkeypatch, "rafdb", server.base + route)
    with pytest.raises(DanError) as err:
        _fetch("rafdb")
    msg = str(err.value)
    assert "\n" not in msg and ".part" not in msg
    assert msg.startswith(f"cannot download rafdb from {url}: ")
    assert BAD[route][transport == "gdown"] in msg
    assert msg.endswith(f"; download it yourself and save it as {home / RAFDB.filename}")
    assert _leftovers(home) == []
    assert server.hits == {route: 1}


def test_offline_message(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = point(monkeypatch, "rafdb", f"http://127.0.0.1:{port}/rafdb.pth")
    with pytest.raises(DanError) as err:
        dan.load_model("rafdb")
    msg = str(err.value)
    assert "\n" not in msg
    assert f"cannot download rafdb from {url}: no connection (offline" in msg and "Connection refused" in msg
    assert msg.endswith(f"save it as {home / RAFDB.filename}")
    assert _leftovers(home) == []


def test_stale_part_files_of_the_entry_are_removed(home: Path, payloads: dict) -> None:
    home.mkdir(parents=True)
    stem = Path(RAFDB.filename).stem
    stale = home / f".{RAFDB.filename}.k1ll3d.part.pth"  # an older version's temporary name
    dead = home / f".{stem}.{2**31 - 1}.tmp.pth"  # dan.fileio's, of a process that is gone
    other = home / ".affecnet7_epoch6_acc0.6569.pth.x.part.pth"  # another entry's: not ours to touch
    for p in (stale, dead, other):
        p.write_bytes(b"half a file")
    assert _fetch("rafdb").read_bytes() == payloads["good7"]
    assert not stale.exists() and not dead.exists() and other.exists()


def test_interrupt_during_download_leaves_nothing(home: Path) -> None:
    def interrupted(tmp: Path) -> None:
        assert tmp.parent == home and tmp.name.startswith(f".{Path(RAFDB.filename).stem}.")  # in the destination
        assert tmp.suffix == ".pth"
        raise KeyboardInterrupt

    with pytest.raises(DanError, match=r"cannot download rafdb from .*: interrupted; download it yourself"):
        hub.resolve_checkpoint("rafdb", verify=interrupted, progress=False)
    assert _leftovers(home) == []


def test_two_processes_fill_one_entry(home: Path, server, payloads: dict, tmp_path: Path) -> None:
    url = server.base + "/slow7.pth"  # about a second per transfer, so the two overlap
    code = (
        "import dataclasses; from dan import hub; "
        f"hub.RELEASED['rafdb'] = dataclasses.replace(hub.RELEASED['rafdb'], url={url!r}); "
        "print(hub.resolve_checkpoint('rafdb', progress=False))"
    )
    env = {**os.environ, "DAN_HOME": str(tmp_path / "home")}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == [str(home / RAFDB.filename)] * 2
    assert server.hits["/slow7.pth"] in (1, 2)
    assert _leftovers(home) == _entry(RAFDB.filename)
    assert (home / RAFDB.filename).read_bytes() == payloads["good7"]


def test_url_spec_cached_under_hashed_name(home: Path, server, payloads: dict) -> None:
    url = server.base + "/good7.pth"
    path = _fetch(url)
    assert path.parent == home and path.name.startswith("good7-") and path.suffix == ".pth"
    other = _fetch(server.base + "/other/good7.pth")  # same basename, another source: another entry
    assert other != path and other.read_bytes() == path.read_bytes() == payloads["good7"]
    model = dan.load_model(url, labels="rafdb")  # from the cache
    assert model.labels == dan.LABEL_SETS["rafdb"]
    assert server.hits == {"/good7.pth": 1, "/other/good7.pth": 1}


def test_url_onnx_that_does_not_parse_is_refused(home: Path, server) -> None:
    url = server.base + "/bad.onnx"
    with pytest.raises(DanError, match="not a readable ONNX file") as err:
        _fetch(url)
    assert url in str(err.value) and _leftovers(home) == []


def test_hf_spec_goes_through_huggingface_hub(home: Path, tmp_path: Path, monkeypatch, payloads: dict) -> None:
    import huggingface_hub

    source = tmp_path / "hf-cache-blob"
    source.write_bytes(payloads["good7"])
    calls = []

    def fake_download(repo_id: str, filename: str, *, revision: str | None = None, **kw) -> str:
        calls.append((repo_id, filename, revision))
        return str(source)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    spec = "hf://owner/repo/sub/model.pth@v1"
    path = _fetch(spec)
    assert path.parent == home and path.name.startswith("model-") and path.suffix == ".pth"
    assert path.read_bytes() == payloads["good7"]
    assert _fetch(spec) == path and calls == [("owner/repo", "sub/model.pth", "v1")]

    def offline(*args, **kw) -> str:
        raise huggingface_hub.errors.LocalEntryNotFoundError("cannot find the requested files in the local cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(DanError) as err:
        _fetch("hf://owner/repo/model.pth")
    msg = str(err.value)
    assert "https://huggingface.co/owner/repo/resolve/main/model.pth" in msg and "LocalEntryNotFoundError" in msg
    assert "\n" not in msg and _leftovers(home) == _entry(path.name)
    with pytest.raises(DanError, match="hf://owner/repo: not an hf:// path"):
        hub.resolve_checkpoint("hf://owner/repo")


def test_drive_quota_and_temporary_file_in_destination(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gdown

    monkeypatch.setitem(hub.RELEASED, "rafdb", RAFDB)  # the real Drive entry; gdown is faked below
    seen = []

    def refused(*, url: str, output, quiet: bool, progress, timeout) -> None:
        seen.append((url, Path(output.name).parent))
        output.write(b"partial")
        raise gdown.exceptions.FileURLRetrievalError(
            "Failed to retrieve file url:\n\n\tToo many users have viewed or downloaded this file recently. Please"
            "\n\ttry accessing the file again later.\n\nYou may still be able to access the file from the browser"
        )

    monkeypatch.setattr(gdown, "download", refused)
    with pytest.raises(DanError) as err:
        dan.load_model("rafdb")
    msg = str(err.value)
    assert seen == [(RAFDB.url, home)] and RAFDB.url == f"https://drive.google.com/uc?id={RAFDB.drive_id}"
    assert "\n" not in msg and "Google Drive refuses the download: too many users" in msg
    assert msg.endswith(f"save it as {home / RAFDB.filename}") and _leftovers(home) == []


def test_unknown_spec_and_local_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path, server) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DanError) as err:
        hub.resolve_checkpoint("nope.pth")
    assert str(err.value) == (
        "nope.pth: no such file, and not a released model name (rafdb, affectnet7, affectnet8), "
        "https:// URL or hf:// path"
    )
    (tmp_path / "rafdb").mkdir()  # a data folder named like a model does not hide it
    assert hub.released_model("rafdb") is hub.RELEASED["rafdb"] and hub.is_remote("rafdb")
    (tmp_path / "affectnet8").write_bytes(b"x")  # a local file does
    assert hub.resolve_checkpoint("affectnet8") == Path("affectnet8") and hub.released_model("affectnet8") is None
    assert server.hits == {}


def test_load_model_and_backend_by_name(home: Path, server, payloads: dict) -> None:
    model = dan.load_model("rafdb")
    assert model.labels == dan.LABEL_SETS["rafdb"] and model.num_classes == 7
    torch.testing.assert_close(model.fc.weight, payloads["fc"])
    backend = load_backend("rafdb")
    assert backend.labels == dan.LABEL_SETS["rafdb"]
    assert server.hits == {"/good7.pth": 1}


def test_cli_models_list_and_download(home: Path, server, monkeypatch, capsys: pytest.CaptureFixture) -> None:
    assert dan_main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("rafdb", "affectnet7", "affectnet8", "89.70%", "82.75%", "65.69%", "62.09%"):
        assert name in out
    assert out.count("  not cached\n") == 4 and str(home) in out  # the three models and the msceleb backbone
    assert dan_main(["models", "download", "rafdb", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"rafdb: {home / RAFDB.filename}"
    assert dan_main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert f"cached {home / RAFDB.filename}\n" in out and out.count("  not cached\n") == 3
    assert "  verified (recorded at its first download)\n" in out
    url = point(monkeypatch, "affectnet8", server.base + "/missing.pth")
    assert dan_main(["models", "download", "affectnet8", "bogus", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and url in err[0] and "HTTP 404" in err[0] and "bogus: not a released model name" in err[1]


def test_cli_info_checkpoint_by_name(home: Path, server, capsys: pytest.CaptureFixture) -> None:
    assert dan_main(["info", "--checkpoint", "rafdb"]) == 0
    out = capsys.readouterr().out
    assert "model:      rafdb" in out and "'num_classes': 7" in out
    assert all(label in out for label in dan.LABEL_SETS["rafdb"])
    assert server.hits == {"/good7.pth": 1}
