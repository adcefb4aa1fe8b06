"""SHA-256 pins of the download cache (dan.hub, dan.hub.records): the catalogue's, or recorded at first use.

Every test runs on a loopback server; none needs the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from pathlib import Path

import pytest
import torch

import dan
from dan import DanError, hub
from dan.cli.main import main as dan_main
from dan.hub import records as hubcache
from dan.models.loading import checkpoint_verifier
from dan.models.reference import PlainDAN

pytest_plugins = ["hubserver"]  # the loopback server and the private cache: fixtures
RAFDB = hub.RELEASED["rafdb"]


def point(monkeypatch: pytest.MonkeyPatch, name: str, url: str, **changes: object) -> str:
    """Point the released entry ``name`` at ``url`` (and change other fields, such as ``sha256``)."""
    monkeypatch.setitem(hub.RELEASED, name, dataclasses.replace(hub.RELEASED[name], url=url, **changes))
    return url


def reference_file(seed: int) -> bytes:
    """A reference-layout 7-class checkpoint with seeded random weights."""
    torch.manual_seed(seed)
    buf = io.BytesIO()
    torch.save({"iter": 21, "model_state_dict": PlainDAN(7, 4).state_dict(), "optimizer_state_dict": {}}, buf)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch(spec: str) -> Path:
    return hub.resolve_checkpoint(spec, verify=checkpoint_verifier(spec), progress=False)


def _cache(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def _states(capsys: pytest.CaptureFixture) -> dict[str, str]:
    """``dan models``' state column, by name."""
    assert dan_main(["models"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line[:1].isalpha()]
    return {row[0]: " ".join(row[4:]) for row in rows if row[0] in hub.RELEASED}


@pytest.fixture
def pinned(home: Path, server, payloads: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The rafdb entry pinned in the catalogue to the served file's SHA-256; returns its cache path."""
    point(monkeypatch, "rafdb", server.base + "/good7.pth", sha256=_sha(payloads["good7"]))
    return home / RAFDB.filename


def test_pinned_release_is_verified_after_download_and_listed(pinned: Path, payloads: dict, capsys) -> None:
    assert _states(capsys)["rafdb"] == "not cached"
    assert _fetch("rafdb") == pinned and pinned.read_bytes() == payloads["good7"]
    assert _cache(pinned.parent) == [pinned.name, f"{pinned.name}.sha256"]
    assert _states(capsys)["rafdb"] == "verified (catalogue pin)"
    model = dan.load_model("rafdb")
    torch.testing.assert_close(model.fc.weight, payloads["fc"])


def test_swapped_pinned_file_is_refused_on_load(pinned: Path, payloads: dict, capsys) -> None:
    _fetch("rafdb")
    pinned.write_bytes(reference_file(seed=1))  # the reference layout, other (random) weights
    with pytest.raises(DanError) as err:
        dan.load_model("rafdb")
    msg = _one_line(err)
    assert msg.startswith(f"{pinned}: SHA-256 mismatch") and "catalogue" in msg
    assert msg.endswith("dan models download rafdb --force")
    assert _states(capsys)["rafdb"] == "MISMATCH"
    assert dan_main(["models", "download", "rafdb", "--force", "--quiet"]) == 0
    capsys.readouterr()
    assert pinned.read_bytes() == payloads["good7"] and _states(capsys)["rafdb"] == "verified (catalogue pin)"
    dan.load_model("rafdb")


def test_pin_mismatch_after_download_caches_nothing(home: Path, server, payloads, monkeypatch) -> None:
    url = point(monkeypatch, "rafdb", server.base + "/good7.pth", sha256=_sha(b"the real release"))
    with pytest.raises(DanError) as err:
        _fetch("rafdb")
    msg = _one_line(err)
    assert msg.startswith(f"cannot download rafdb from {url}: ") and "SHA-256" in msg
    assert _sha(payloads["good7"])[:16] in msg and _sha(b"the real release")[:16] in msg
    assert _cache(home) == []


def test_first_download_records_the_hash_and_later_loads_check_it(home: Path, payloads, capsys) -> None:
    assert RAFDB.sha256 is None or isinstance(RAFDB.sha256, str)
    path = _fetch("rafdb")  # the fixture's entry has no catalogue pin
    sidecar = path.with_name(f"{path.name}.sha256")
    assert sidecar.read_text().splitlines()[0] == f"{_sha(payloads['good7'])}  {path.name}"  # sha256sum -c format
    assert _states(capsys)["rafdb"] == "verified (recorded at its first download)"
    path.write_bytes(reference_file(seed=2))
    with pytest.raises(DanError) as err:
        dan.load_model("rafdb")
    msg = _one_line(err)
    assert msg.startswith(f"{path}: SHA-256 mismatch") and str(sidecar) in msg and msg.endswith("--force")
    assert _states(capsys)["rafdb"] == "MISMATCH"
    path.unlink()  # deleted by hand: the next download must match the recorded hash again
    assert _fetch("rafdb").read_bytes() == payloads["good7"]


def test_hand_placed_file_is_accepted_once_with_a_notice(home: Path, server, payloads, capsys) -> None:
    home.mkdir(parents=True)
    placed = home / RAFDB.filename
    placed.write_bytes(reference_file(seed=3))
    assert _states(capsys)["rafdb"] == "unpinned"
    dan.load_model("rafdb")
    err = capsys.readouterr().err
    assert "notice" in err and "not pinned" in err and str(placed) in err and server.hits == {}
    dan.load_model("rafdb")
    assert "notice" not in capsys.readouterr().err  # one time only: the hash is recorded now
    assert _states(capsys)["rafdb"] == "verified (recorded at its first use)"
    placed.write_bytes(reference_file(seed=4))
    with pytest.raises(DanError, match="SHA-256 mismatch"):
        dan.load_model("rafdb")
    # a hand-placed file's hash does not bind the release's download
    assert dan_main(["models", "download", "rafdb", "--force", "--quiet"]) == 0
    assert placed.read_bytes() == payloads["good7"] and server.hits == {"/good7.pth": 1}


def test_hand_placed_file_of_another_layout_is_refused(home: Path, payloads: dict) -> None:
    home.mkdir(parents=True)
    (home / RAFDB.filename).write_bytes(payloads["resnet"])
    with pytest.raises(DanError) as err:
        dan.load_model("rafdb")
    assert "not the reference DAN layout" in _one_line(err)
    assert _cache(home) == [RAFDB.filename]  # nothing recorded for a file that was refused


def test_unchanged_file_is_not_hashed_again(pinned: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fetch("rafdb")
    calls: list[Path] = []
    real = hubcache.sha256_file
    monkeypatch.setattr(hubcache, "sha256_file", lambda path: calls.append(path) or real(path))
    _fetch("rafdb")
    assert calls == []
    before = pinned.stat()
    data = bytearray(pinned.read_bytes())
    data[-100] ^= 0xFF  # same size, one byte changed, modification time put back
    pinned.write_bytes(bytes(data))
    os.utime(pinned, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(DanError, match="SHA-256 mismatch"):
        _fetch("rafdb")
    assert calls == [pinned]


def test_damaged_sidecar_is_one_line(pinned: Path) -> None:
    _fetch("rafdb")
    sidecar = pinned.with_name(f"{pinned.name}.sha256")
    sidecar.write_bytes(b"\x00garbage")
    with pytest.raises(DanError) as err:
        _fetch("rafdb")
    assert str(sidecar) in _one_line(err)


def test_no_lock_file_is_left(home: Path, server, monkeypatch) -> None:
    point(monkeypatch, "affectnet8", server.base + "/missing.pth")
    with pytest.raises(DanError):
        _fetch("affectnet8")
    _fetch("rafdb")
    _fetch(server.base + "/other/good7.pth")
    assert not [p for p in home.iterdir() if p.name.endswith(".lock")], _cache(home)


@pytest.mark.parametrize(
    "spec",
    [
        "hf://../../x",
        "hf://owner/../x.pth",
        "hf://.owner/repo/x.pth",
        "hf://owner/repo./x.pth",
        "hf://own..er/repo/x.pth",
        "hf://owner/re po/x.pth",
        "hf://owner/repo/a/../../x.pth",
        "hf://owner/repo/./x.pth",
        "hf://owner/repo/x.pth@main/../../y",
        "hf://owner/repo/x.pth@",
    ],
)
def test_bad_hf_names_are_one_line(spec: str, home: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import huggingface_hub

    def never(*args, **kw):
        raise AssertionError("huggingface_hub was called")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", never)
    with pytest.raises(DanError) as err:
        _fetch(spec)
    assert _one_line(err).startswith(f"{spec}: ")
    assert dan_main(["info", "--checkpoint", spec]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err and len(out.err.strip().splitlines()) == 1


def test_huggingface_errors_while_resolving_are_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub.errors import HFValidationError

    def invalid(*args, **kw):
        raise HFValidationError("Repo id must be in the form 'repo_name'\nor 'namespace/repo_name'")

    monkeypatch.setattr(huggingface_hub, "hf_hub_url", invalid)
    with pytest.raises(DanError) as err:
        _fetch("hf://owner/repo/x.pth")
    assert _one_line(err).startswith("hf://owner/repo/x.pth: ") and "HFValidationError" in str(err.value)


def test_pin_script_prints_the_catalogue_lines(home: Path, server, payloads, monkeypatch, capsys) -> None:
    from scripts.maint import pin_releases as module

    point(monkeypatch, "affectnet7", server.base + "/good7.pth", sha256="0" * 64)  # a wrong pin: refused
    assert module.main(["rafdb", "affectnet7", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f'rafdb: sha256="{_sha(payloads["good7"])}",  # ')
    assert "affectnet7" not in captured.out and "affectnet7: cannot download" in captured.err
    assert _cache(home) == []  # downloaded into a temporary folder, not the user's cache


def test_entry_lock_excludes_while_its_file_comes_and_goes(tmp_path: Path) -> None:
    """Holders remove the lock file on release; a waiter that locked the removed file must lock again."""
    import threading
    import time

    inside, overlaps, done = [0], [0], []

    def worker() -> None:
        for _ in range(40):
            lock = hubcache.EntryLock(tmp_path / "entry.pth")
            lock.acquire()
            inside[0] += 1
            time.sleep(0.001)  # a window for another holder to show up in
            overlaps[0] += inside[0] > 1
            inside[0] -= 1
            lock.release()
        done.append(1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(done) == 4 and overlaps == [0] and list(tmp_path.iterdir()) == []
