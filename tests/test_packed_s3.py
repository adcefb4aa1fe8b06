"""Packed data in object storage: moto's S3 server on loopback, plain http (LitData's boto3 path)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from dan.cli.main import main
from dan.data.datamodule import FERDataModule
from dan.data.formats import get_format
from dan.data.pack import MANIFEST, pack_dataset
from dan.errors import DanError
from tests.fakedata import make_rafdb

pytest.importorskip("litdata")
pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

CONF = Path(__file__).parent / "conf" / "tiny.yaml"


@pytest.fixture(scope="module")
def endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Credentials and the endpoint in the environment (as a user sets them), a bucket, a private chunk cache."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("LITDATA_CACHE_DIR", str(tmp_path / "chunk-cache"))
    client = boto3.client("s3", endpoint_url=endpoint)
    bucket = f"packs-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def test_pack_to_s3_then_the_same_batches_as_the_local_original(s3, tmp_path: Path) -> None:
    client, bucket = s3
    make_rafdb(tmp_path / "raf", train_per_class=3)
    url = f"s3://{bucket}/sets/raf"
    pack_dataset("rafdb", tmp_path / "raf", url, chunk_bytes="8KB", say=lambda _: None)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert f"sets/raf/{MANIFEST}" in keys and "sets/raf/train/index.json" in keys
    assert sum(k.endswith(".bin") for k in keys) > 2  # several chunks: fetched one by one on demand
    kwargs = {"image_size": 32, "batch_size": 4, "num_workers": 1, "seed": 3, "augment": "flip"}
    a = FERDataModule(format="rafdb", root=str(tmp_path / "raf"), **kwargs)
    b = FERDataModule(format="packed", root=url, **kwargs)
    a.setup("fit")
    b.setup("fit")
    for x, y in zip(a.train_dataloader(), b.train_dataloader(), strict=True):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert any((tmp_path / "chunk-cache").rglob("chunk-*.bin"))  # chunks were streamed into the cache


def test_fit_from_s3(s3, tmp_path: Path, monkeypatch) -> None:
    _, bucket = s3
    make_rafdb(tmp_path / "raf", train_per_class=3)
    url = f"s3://{bucket}/raf"
    pack_dataset("rafdb", tmp_path / "raf", url, say=lambda _: None)
    monkeypatch.chdir(tmp_path)
    args = ["fit", "-c", str(CONF), "--data.format", "packed", "--data.root", url, "--data.image_size", "32"]
    args += ["--trainer.max_epochs", "1", "--data.batch_size", "4", "--trainer.default_root_dir", str(tmp_path)]
    assert main(args) == 0
    assert (tmp_path / "runs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt").exists()


def test_missing_bucket_unfinished_pack_and_unreachable_store_are_one_line(s3, tmp_path: Path, monkeypatch) -> None:
    client, bucket = s3
    packed = get_format("packed")
    with pytest.raises(DanError, match=r"bucket 'no-such-bucket' not found") as err:
        packed.label_names("s3://no-such-bucket/raf")
    assert "\n" not in str(err.value)
    make_rafdb(tmp_path / "raf")
    pack_dataset("rafdb", tmp_path / "raf", f"s3://{bucket}/raf", splits=["test"], say=lambda _: None)
    client.delete_object(Bucket=bucket, Key=f"raf/{MANIFEST}")  # what a pack killed before its last write leaves
    with pytest.raises(DanError, match="did not finish"):
        packed.label_names(f"s3://{bucket}/raf")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    with pytest.raises(DanError, match="cannot reach the object store") as err:
        packed.label_names(f"s3://{bucket}/raf")
    assert "\n" not in str(err.value)
    monkeypatch.chdir(tmp_path)
    args = ["fit", "-c", str(CONF), "--data.format", "packed", "--data.root", f"s3://{bucket}/raf"]
    assert main(args) == 1  # dan fit: the one line, no traceback


@pytest.mark.slow  # LitData gives up on the chunk after its retries and waits (minutes)
def test_a_cut_connection_stops_training_with_a_resumable_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import boto3

    import training_helpers

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in (("AWS_ACCESS_KEY_ID", "t"), ("AWS_SECRET_ACCESS_KEY", "t"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    monkeypatch.setenv("LITDATA_CACHE_DIR", str(tmp_path / "chunk-cache"))
    boto3.client("s3").create_bucket(Bucket="cut")
    make_rafdb(tmp_path / "raf", train_per_class=4)
    pack_dataset("rafdb", tmp_path / "raf", "s3://cut/raf", chunk_bytes="1KB", say=lambda _: None)  # a chunk a face
    monkeypatch.setitem(training_helpers.AT_STEP, 2, server.stop)  # the store goes away at step 2
    monkeypatch.chdir(tmp_path)
    args = ["fit", "-c", str(CONF), "--data.format", "packed", "--data.root", "s3://cut/raf"]
    args += ["--data.image_size", "32", "--data.batch_size", "4", "--trainer.default_root_dir", str(tmp_path)]
    args += ["--trainer.callbacks+=training_helpers.CallAt"]
    assert main(args) == 1
    err = capsys.readouterr().err
    last = tmp_path / "runs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt"
    assert f"resumable checkpoint: {last}" in err
    error = [line for line in err.splitlines() if line.startswith("dan fit: error:")]
    assert len(error) == 1 and "s3://cut/raf/train" in error[0] and "Traceback" not in err
    # the batch of step 2 was fetched before the cut; step 3's chunk never came
    assert torch.load(last, weights_only=True)["global_step"] == 3
