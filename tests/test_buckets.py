"""Inputs and outputs in a bucket: a local S3 server (moto's server mode on 127.0.0.1, with IAM
credentials checked) holds the clip and the model; the command reads them and writes its output
there, uploaded only once complete. Needs ``pip install "moto[server]" s3fs`` (the test extra)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ffmpeg
from dreamvideo import io
from helpers import stop_groups, tiny_model_file

MOTO = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
pytestmark = pytest.mark.skipif(importlib.util.find_spec("s3fs") is None or not Path(MOTO).exists(),
                                reason='needs pip install "moto[server]" s3fs')


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server(checks_credentials: bool):
    """A local S3 server on 127.0.0.1 and its endpoint; with ``checks_credentials``, an IAM user's key
    (``(endpoint, key)``) is made first, and every later call must be signed with it."""
    import boto3

    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"} if checks_credentials else os.environ
    server = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], start_new_session=True, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:  # a bare connection: a request would use up one of the calls made without credentials
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        endpoint, key = f"http://127.0.0.1:{port}", None
        if checks_credentials:  # the first 3 calls (the user, its key, its policy) need none
            iam = boto3.client("iam", aws_access_key_id="admin", aws_secret_access_key="admin",
                               endpoint_url=endpoint, region_name="us-east-1")
            iam.create_user(UserName="render")
            key = iam.create_access_key(UserName="render")["AccessKey"]
            iam.put_user_policy(UserName="render", PolicyName="all", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        yield endpoint, key
    finally:
        stop_groups([server], grace=5)


@contextlib.contextmanager
def aws_env(**values):
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "XDG_CACHE_HOME")
    old = {k: os.environ.get(k) for k in names}
    os.environ.update(AWS_DEFAULT_REGION="us-east-1", **values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def fill_bucket(d: Path) -> None:
    import s3fs

    if not (d / "clip.mp4").is_file():
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=12", "-f", "lavfi", "-i", "sine=frequency=440",
               "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", d / "clip.mp4")
        tiny_model_file(d / "tiny.keras")
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir("bucket")
    fs.put_file(str(d / "clip.mp4"), "bucket/clip.mp4")
    fs.put_file(str(d / "tiny.keras"), "bucket/tiny.keras")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A bucket ``bucket`` holding ``clip.mp4`` (3 s with a tone) and ``tiny.keras`` on a local S3
    server (as moto serves by default: any key is taken); the environment points there."""
    d = tmp_path_factory.mktemp("s3")
    with moto_server(False) as (endpoint, _), aws_env(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="render",
                                                     AWS_SECRET_ACCESS_KEY="render", XDG_CACHE_HOME=str(d / "cache")):
        fill_bucket(d)
        yield {"dir": d}


@pytest.fixture(scope="module")
def s3_checked(tmp_path_factory):
    """The same bucket on a server that checks credentials: an IAM user's good key in the environment."""
    d = tmp_path_factory.mktemp("s3checked")
    with moto_server(True) as (endpoint, key), aws_env(
            AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=key["AccessKeyId"],
            AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"], XDG_CACHE_HOME=str(d / "cache")):
        fill_bucket(d)
        yield {"dir": d}


def run_cli(capsys, *argv):
    from dreamvideo import cli

    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


DREAM = ["--model", "s3://bucket/tiny.keras", "--layers", "conv2", "--octaves", "1", "--steps", "2", "-q"]


def size(key: str):
    """The size of ``bucket/key``, or None while there is no such object."""
    import s3fs

    try:
        return s3fs.S3FileSystem(skip_instance_cache=True).info(f"bucket/{key}")["size"]
    except FileNotFoundError:
        return None


@pytest.mark.ray
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason='needs Ray: pip install "dreamvideo[ray]"')
def test_a_render_from_a_bucket_to_a_bucket_on_workers_appears_only_when_complete(s3, capsys):
    seen, stop = [], threading.Event()

    def watch():  # every size the output object ever had while the render ran
        while not stop.is_set():
            now = size("out.mp4")
            if now is not None:
                seen.append(now)
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        rc, _, err = run_cli(capsys, "video", "s3://bucket/clip.mp4", "-o", "s3://bucket/out.mp4", *DREAM,
                             "--workers", "2")
    finally:
        stop.set()
        t.join()
    assert rc == 0, err
    final = size("out.mp4")
    assert set(seen) <= {final}  # never a half-written object
    local = s3["dir"] / "out.mp4"
    import s3fs

    s3fs.S3FileSystem(skip_instance_cache=True).get_file("bucket/out.mp4", str(local))
    info = io.probe_video(local)
    assert info.nframes == 36 and info.has_audio
    assert not list((s3["dir"] / "cache" / "dreamvideo" / "urls").iterdir())  # nothing left behind on success


def test_a_missing_object_is_one_line_naming_it_before_any_model_loads(s3, capsys):
    t = time.perf_counter()
    rc, _, err = run_cli(capsys, "video", "s3://bucket/nope.mp4", "-o", s3["dir"] / "o.mp4", *DREAM)
    assert rc == 2 and err.count("\n") == 1
    assert "s3://bucket/nope.mp4 not found" in err
    rc, _, err = run_cli(capsys, "video", "s3://bucket/clip.mp4", "-o", "s3://nobucket/o.mp4", *DREAM)
    assert rc == 2 and err.count("\n") == 1 and "bucket nobucket not found" in err
    assert time.perf_counter() - t < 20


def test_a_wrong_secret_is_one_line_that_does_not_print_it(s3_checked, capsys, monkeypatch):
    assert size("clip.mp4")  # the good key reads it
    wrong = "wR0ngS3cretValue-that-must-not-show"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    rc, out, err = run_cli(capsys, "video", "s3://bucket/clip.mp4", "-o", s3_checked["dir"] / "o.mp4", *DREAM)
    assert rc == 2 and err.count("\n") == 1, err
    assert "s3://bucket/clip.mp4" in err and "credentials were refused" in err and "AWS_SECRET_ACCESS_KEY" in err
    assert wrong not in out + err
    cache = s3_checked["dir"] / "cache"
    assert not any(wrong in p.read_text(errors="ignore") for p in cache.rglob("*") if p.is_file())
