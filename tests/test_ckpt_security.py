"""``--ckpt_path`` never runs code from a file, whatever its scheme; a resumed checkpoint is whole.

The attack: a pickle whose ``__reduce__`` calls ``os.mkdir`` (a stand-in for ``os.system``), served on
loopback or named by a ``file://`` URL, given to ``dan fit|validate|test --ckpt_path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dan.cli.main import main
from dan.errors import DanError
from dan.fileio import remove_stale_temps_in
from dan.training.callbacks import EpochSummary
from dan.training.checkpoint_io import CHECKSUM_KEY, AtomicCheckpointIO, checkpoint_checksum
from dan.training.ckpt_path import resolve_ckpt_path

CONF = Path(__file__).parent / "conf" / "tiny.yaml"


class _Payload:
    """Unpickling this calls ``os.mkdir(marker)``: the code an attacker's checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture(scope="module")
def server():
    """A loopback HTTP server serving ``server.routes[path]`` (bytes); ``server.hits`` counts GETs."""
    routes: dict[str, bytes] = {}
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            hits[self.path] = hits.get(self.path, 0) + 1
            body = routes.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"  # type: ignore[attr-defined]
    httpd.routes, httpd.hits = routes, hits  # type: ignore[attr-defined]
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    assert main(["synth", str(out), "--per-class", "4", "--size", "48", "--seed", "7", "--workers", "0"]) == 0
    return out


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder, DAN_HOME and TORCH_HOME (torch.hub's cache) inside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAN_HOME", str(tmp_path / "dan_home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path


def _evil(path: Path, marker: Path) -> Path:
    """A file that looks like a Lightning training checkpoint and runs code when unpickled."""
    torch.save({"state_dict": {}, "loops": {}, "epoch": 0, "global_step": 0, "x": _Payload(marker)}, path)
    return path


FAST = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1"]


def _run(command: str, synth: Path, *extra: str) -> int:
    argv = [command, "-c", str(CONF), "--data.root", str(synth), "--trainer.max_epochs", "1", *FAST, *extra]
    return main([*argv, "--trainer.num_sanity_val_steps", "0"] if command == "fit" else argv)


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _one_line_error(err: str, *needles: str) -> None:
    """The error is one line; before it at most dan.hub's notice of a download."""
    lines = [line for line in err.strip().splitlines() if not line.startswith("dan: downloading ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error:" in lines[0], err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("command", ["fit", "validate", "test"])
def test_a_remote_pickle_never_runs(command: str, server, synth: Path, place: Path, capsys) -> None:
    marker = place / "pwned"
    name = f"/evil-{command}.ckpt"
    server.routes[name] = _evil(place / "evil.ckpt", marker).read_bytes()
    (place / "evil.ckpt").unlink()
    url = server.base + name
    status = _run(command, synth, "--ckpt_path", url)
    err = capsys.readouterr().err
    assert not marker.exists(), "the checkpoint's pickle ran code"
    assert status == 1
    _one_line_error(err, url, "Python objects")
    assert server.hits.get(name) == 1  # fetched once, by dan.hub, not by torch.hub
    assert _files(place / "torch_home") == []  # nothing in torch.hub's cache
    assert _files(place / "dan_home") == [] or all(p.suffix == ".lock" for p in _files(place / "dan_home"))
    assert not (place / "runs").exists()  # no empty runs/<name>/version_N


def test_an_hf_pickle_never_runs(synth: Path, place: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import huggingface_hub

    marker = place / "pwned"
    evil = _evil(place / "evil.ckpt", marker)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *args, **kwargs: str(evil))
    assert _run("fit", synth, "--ckpt_path", "hf://owner/repo/evil.ckpt") == 1
    assert not marker.exists()
    _one_line_error(capsys.readouterr().err, "hf://owner/repo/evil.ckpt", "Python objects")
    assert [p for p in _files(place / "dan_home") if p.suffix == ".ckpt"] == []  # not in the cache
    assert not (place / "runs").exists()


@pytest.mark.parametrize("command", ["fit", "validate"])
def test_a_file_url_pickle_never_runs(command: str, synth: Path, place: Path, capsys) -> None:
    marker = place / "pwned"
    evil = _evil(place / "evil.ckpt", marker)
    status = _run(command, synth, "--ckpt_path", evil.as_uri())
    err = capsys.readouterr().err
    assert not marker.exists(), "the checkpoint's pickle ran code"
    assert status == 1
    _one_line_error(err, str(evil), "Python objects")
    assert not (place / "runs").exists()


@pytest.mark.parametrize(
    "spec", ["s3://bucket/last.ckpt", "gs://bucket/last.ckpt", "memory://last.ckpt", "registry", "ftp://host/x.ckpt"]
)
def test_other_schemes_are_refused_in_one_line(spec: str, synth: Path, place: Path, capsys) -> None:
    assert _run("fit", synth, f"--ckpt_path={spec}") == 1
    _one_line_error(capsys.readouterr().err, spec)
    assert not (place / "runs").exists()


def test_a_local_pickle_never_runs(synth: Path, place: Path, capsys) -> None:
    marker = place / "pwned"
    evil = _evil(place / "evil.ckpt", marker)
    assert _run("test", synth, "--ckpt_path", str(evil)) == 1
    assert not marker.exists()
    _one_line_error(capsys.readouterr().err, str(evil), "Python objects")
    assert not (place / "runs").exists()


def test_lightnings_own_load_is_weights_only(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = _evil(tmp_path / "evil.ckpt", marker)
    io = AtomicCheckpointIO()
    with pytest.raises(DanError, match="Python objects"):
        io.load_checkpoint(evil, weights_only=False)  # what Lightning asks for an http(s) URL
    assert not marker.exists()
    with pytest.raises(DanError, match="local files only"):
        io.load_checkpoint("http://127.0.0.1:9/last.ckpt")


# ------------------------------------------------------------------ a real checkpoint, resumed


@pytest.fixture(scope="module")
def trained(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.ckpt of a one-epoch run."""
    root = tmp_path_factory.mktemp("trained")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert _run("fit", synth) == 0
    finally:
        os.chdir(cwd)
    return root / "runs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths Lightning's checkpoint reader is given."""
    seen: list[str] = []
    original = AtomicCheckpointIO.load_checkpoint

    def spy(self, path, *args, **kwargs):
        seen.append(str(path))
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(AtomicCheckpointIO, "load_checkpoint", spy)
    return seen


def test_a_checkpoint_on_http_is_resumed_from_the_verified_cached_file(
    trained: Path, server, synth: Path, place: Path, loads: list[str], capsys
) -> None:
    server.routes["/run/last.ckpt"] = trained.read_bytes()
    url = server.base + "/run/last.ckpt"
    assert _run("fit", synth, "--ckpt_path", url, "--trainer.max_epochs", "2") == 0
    cached = [p for p in _files(place / "dan_home" / "models") if p.suffix == ".ckpt"]
    assert len(cached) == 1 and cached[0].read_bytes() == trained.read_bytes()
    assert loads == [str(cached[0])]  # Lightning got the local file, never the URL
    assert _files(place / "torch_home") == []
    assert "epoch 2/2" in capsys.readouterr().out  # it resumed after the first epoch
    assert server.hits["/run/last.ckpt"] == 1


def test_a_file_url_is_read_as_the_local_file(trained: Path, synth: Path, place: Path, loads: list[str]) -> None:
    assert _run("validate", synth, "--ckpt_path", trained.as_uri()) == 0
    assert loads == [str(trained)]


# ------------------------------------------------------------------ the whole-checkpoint checksum


def test_every_saved_entry_is_under_the_checksum(trained: Path) -> None:
    state = torch.load(trained, weights_only=True)
    assert state[CHECKSUM_KEY] == checkpoint_checksum(state)
    entries = {"state_dict", "optimizer_states", "lr_schedulers", "loops", "callbacks", "dan_resume", "dan"}
    assert entries <= set(state)
    changes = {
        "optimizer": lambda s: s["optimizer_states"][0]["state"][0]["exp_avg"].view(-1)[0].add_(1e-3),
        "scheduler": lambda s: s["lr_schedulers"][0].update(last_epoch=7),
        "loops": lambda s: s["loops"]["fit_loop"]["epoch_progress"]["current"].update(completed=5),
        "rng": lambda s: s["dan_resume"]["rng"][0]["torch"].view(-1)[100:101].add_(1),
        "settings": lambda s: s["dan"]["model_config"].update(num_heads=3),
        "new entry": lambda s: s.update(extra=1),
    }
    for name, change in changes.items():
        copy = torch.load(trained, weights_only=True)
        change(copy)
        assert checkpoint_checksum(copy) != state[CHECKSUM_KEY], name


def test_a_changed_optimiser_state_is_refused_on_resume(trained: Path, synth: Path, place: Path, capsys) -> None:
    state = torch.load(trained, weights_only=True)
    state["optimizer_states"][0]["state"][0]["exp_avg_sq"].view(-1)[0] += 1.0  # the network's weights untouched
    damaged = place / "last.ckpt"
    torch.save(state, damaged)
    assert _run("fit", synth, "--ckpt_path", str(damaged), "--trainer.max_epochs", "2") == 1
    _one_line_error(capsys.readouterr().err, str(damaged), "damaged checkpoint")
    assert not (place / "runs").exists()
    with pytest.raises(DanError, match="damaged checkpoint"):  # and whatever path Lightning takes to it
        AtomicCheckpointIO().load_checkpoint(damaged)


def test_a_checkpoint_without_a_checksum_still_loads(trained: Path, tmp_path: Path) -> None:
    state = torch.load(trained, weights_only=True)
    del state[CHECKSUM_KEY]
    old = tmp_path / "old.ckpt"
    torch.save(state, old)
    assert resolve_ckpt_path(old) == str(old)
    assert AtomicCheckpointIO().load_checkpoint(old)["global_step"] == state["global_step"]


# ------------------------------------------------------------------ temporary files of killed saves


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_remove_stale_temps_keeps_live_writers_and_other_files(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = [tmp_path / f".last.{dead}.tmp.ckpt", tmp_path / f".best-epoch03-acc0.91.{dead}.tmp.ckpt"]
    kept = [tmp_path / ".last.1.tmp.ckpt", tmp_path / f".last.{os.getpid()}.tmp.ckpt", tmp_path / "last.ckpt"]
    kept += [tmp_path / f"notes.{dead}.txt"]
    for p in stale + kept:
        p.write_bytes(b"x")
    assert sorted(remove_stale_temps_in(tmp_path)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    assert remove_stale_temps_in(tmp_path / "missing") == []


def test_a_resumed_run_removes_killed_saves_in_both_folders(trained: Path, synth: Path, place: Path, capsys) -> None:
    old, new = place / "old", place / "new"
    old.mkdir()
    new.mkdir()
    resume = old / "last.ckpt"
    resume.write_bytes(trained.read_bytes())
    dead = _dead_pid()
    left = [old / f".last.{dead}.tmp.ckpt", new / f".best-epoch00-acc0.1429.{dead}.tmp.ckpt"]
    for p in left:
        p.write_bytes(b"\0" * 1000)  # what kill -9 mid-save leaves
    live = new / ".last.1.tmp.ckpt"  # pid 1 runs: a save in progress elsewhere
    live.write_bytes(b"\0")
    folders = ["--checkpoint.dirpath", str(new), "--last_checkpoint.dirpath", str(new)]
    assert _run("fit", synth, "--ckpt_path", str(resume), "--trainer.max_epochs", "2", *folders) == 0
    assert not any(p.exists() for p in left) and live.exists()
    assert f"killed checkpoint saves in {old}" in capsys.readouterr().out
    assert (new / "last.ckpt").is_file()


# ------------------------------------------------------------------ the epoch line after a resume


def test_the_epoch_line_of_a_resumed_epoch_counts_from_the_resume(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    clock = iter([4300.0, 4300.0, 4320.0, 4400.0, 4441.0])
    monkeypatch.setattr("dan.training.callbacks.time.perf_counter", lambda: next(clock))
    summary = EpochSummary()  # 4300
    trainer = SimpleNamespace(is_global_zero=True, callback_metrics={}, max_epochs=4, current_epoch=2, optimizers=[])
    summary.on_train_start(trainer, None)  # 4300: resumed mid-epoch, Lightning skips on_train_epoch_start
    summary.on_train_epoch_end(trainer, None)  # 4320
    assert capsys.readouterr().out.strip() == "epoch 3/4  20 s since the resume"
    trainer.current_epoch = 3
    summary.on_train_epoch_start(trainer, None)  # 4400
    summary.on_train_epoch_end(trainer, None)  # 4441
    assert capsys.readouterr().out.strip() == "epoch 4/4  41 s"
