"""Official checkpoints by name: download once from a loopback HTTP server, unzip, load offline, checksums, errors.

Nothing here reaches the internet: the registry's base URL is pointed at a server on 127.0.0.1 that serves a zip
built by the test (a tiny checkpoint in the official release layout ``<name>/checkpoint-300.pth``).
"""
from __future__ import annotations

import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import m2d_hear
from m2d_hear import fileio, hub
from m2d_hear.fileio import sha256_file
from tests.fixtures import checkpoints as ck

NAME = "m2d_vit_base-80x608p16x16-221006-mr7"
FILE = "checkpoint-300.pth"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # http.server's naming
        server = self.server
        server.requests.append(self.path)
        body = server.payload
        if server.mode == "missing" or not self.path.endswith(f"/{NAME}.zip"):
            self.send_error(404)
            return
        if server.mode == "corrupt":
            body = bytes(reversed(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # truncated: promise every byte, send half, close the connection
        self.wfile.write(body[: len(body) // 2] if server.mode == "truncate" else body)

    def log_message(self, *args):
        pass


class LoopbackServer:
    def __init__(self, payload: bytes):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.payload, self.httpd.mode, self.httpd.requests = payload, "ok", []
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/releases/download"

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    def set_mode(self, mode: str) -> None:
        self.httpd.mode = mode

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def release_zip(source: Path, name: str = NAME, members: dict[str, bytes] | None = None) -> bytes:
    """A zip laid out like the official releases: one folder named like the checkpoint, the weights inside."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if members is None:
            archive.write(source, f"{name}/{source.name}")
        else:
            for arcname, data in members.items():
                archive.writestr(arcname, data)
    return buffer.getvalue()


@pytest.fixture
def source(tmp_path) -> Path:
    """The tiny checkpoint the release zip holds (a full training checkpoint in the official layout)."""
    return ck.write_full_checkpoint(tmp_path / "src", NAME)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("M2D_HOME", str(tmp_path / "home"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(hub, "_VERIFIED", {})
    return tmp_path / "home" / "checkpoints"


@pytest.fixture
def server(source, cache, monkeypatch):
    srv = LoopbackServer(release_zip(source))
    monkeypatch.setattr(hub, "RELEASES", srv.base)
    yield srv
    srv.stop()


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


def _embed(model):
    audio = torch.rand(1, 16000, generator=torch.Generator().manual_seed(0)) - 0.5
    return m2d_hear.get_scene_embeddings(audio, model)


def test_registry_lists_every_release_with_its_url():
    names = set(hub.REGISTRY)
    for expected in ("m2d_vit_base-80x608p16x16-221006-mr6", NAME, "m2d_vit_base-80x608p16x16-221006-mr7_enconly",
                     "m2d_vit_base-80x608p16x16-220930-mr7_enconly", "m2d_vit_base-80x200p16x4-230529",
                     "m2d_as_vit_base-80x608p16x16-240213", "m2d_clap_vit_base-80x608p16x16-240128",
                     "m2d_vit_base-80x1001p16x16-221006-mr7_as_46ab246d",
                     "m2d_as_vit_base-80x1001p16x16-240213_AS-FT_enconly",
                     "m2d_clap_vit_base-80x1001p16x16-240128_AS-FT_enconly",
                     "m2d_as_vit_base-80x608p16x16p32k-240413_enconly",
                     "m2d_as_vit_base-80x1001p16x16p32k-240413_AS-FT_enconly",
                     "m2d_s_vit_base-80x608p80x2-230220", "m2d_s_vit_base-80x512p80x2-230301",
                     "m2d_s_vit_base-80x400p80x2-230201", "m2d_clap_vit_base-80x1001p16x16p16kpBpTI-2025"):
        assert expected in names
    for release in hub.RELEASE_LIST:
        assert release.url == f"https://github.com/nttcslab/m2d/releases/download/{release.tag}/{release.name}.zip"
        m2d_hear.parse_config_name(release.name)  # every name carries a configuration our loader reads


def test_first_use_downloads_unzips_and_loads(server, source, cache):
    model = m2d_hear.load_model(NAME)
    path = cache / NAME / FILE
    assert Path(model.checkpoint_path) == path and path.read_bytes() == source.read_bytes()
    assert torch.equal(_embed(model), _embed(m2d_hear.load_model(str(source))))
    assert server.requests == [f"/releases/download/v0.1.0/{NAME}.zip"]
    record = (cache / NAME / hub.CHECKSUM_FILE).read_text()
    assert sha256_file(path) in record and server.base in record
    assert leftovers(cache) == [NAME, f"{NAME}.lock"]  # the zip and every temporary file are gone


def test_later_loads_are_offline(server, cache):
    first = m2d_hear.load_model(NAME)
    server.stop()
    again = m2d_hear.load_model(NAME)
    by_file = m2d_hear.load_m2d(f"{NAME}/{FILE}")  # the NAME/FILE form too
    assert again.checkpoint_path == by_file.checkpoint_path == first.checkpoint_path
    assert len(server.requests) == 1


@pytest.mark.parametrize("mode", ["truncate", "corrupt"])
def test_broken_download_leaves_nothing_and_retries_cleanly(server, cache, mode):
    server.set_mode(mode)
    with pytest.raises(hub.WeightsDownloadError) as err:
        m2d_hear.load_model(NAME)
    message = str(err.value)
    assert "\n" not in message and server.base in message and "incomplete or not a valid zip" in message
    assert not (cache / NAME).exists() and leftovers(cache) == [f"{NAME}.lock"]
    server.set_mode("ok")
    assert Path(m2d_hear.load_model(NAME).checkpoint_path) == cache / NAME / FILE


def test_killed_download_leftovers_are_cleared(server, cache):
    cache.mkdir(parents=True)
    (cache / f"{NAME}.zip.0123abcd.partial").write_bytes(b"half a download")
    (cache / f".{NAME}.unzip-99999").mkdir()
    hub.resolve_weights(NAME)
    assert leftovers(cache) == [NAME, f"{NAME}.lock"]


def test_server_down_says_which_url_and_where_to_put_the_file(source, cache, monkeypatch):
    srv = LoopbackServer(b"")
    srv.stop()  # nothing listens on that port any more
    monkeypatch.setattr(hub, "RELEASES", srv.base)
    with pytest.raises(hub.WeightsDownloadError) as err:
        m2d_hear.load_model(NAME)
    message = str(err.value)
    url = f"{srv.base}/v0.1.0/{NAME}.zip"
    assert "\n" not in message and url in message and str(cache / f"{NAME}.zip") in message
    assert not (cache / NAME).exists()
    # the same in the command-line tools: one line, exit status 1
    from evaluation.cli import main

    result = CliRunner().invoke(main, ["weights", "download", NAME, "--no-progress"])
    assert result.exit_code == 1 and url in result.output and len(result.output.strip().splitlines()) == 1
    # the remedy the message names: save the zip there by hand; it is unzipped on next use
    (cache / f"{NAME}.zip").write_bytes(release_zip(source))
    assert Path(m2d_hear.load_model(NAME).checkpoint_path) == cache / NAME / FILE


def test_missing_release_file_on_the_server(server, cache):
    server.set_mode("missing")
    with pytest.raises(hub.WeightsDownloadError, match="HTTP 404 Not Found"):
        hub.resolve_weights(NAME)
    assert not (cache / NAME).exists()


def test_tampered_file_fails_its_checksum(server, cache):
    m2d_hear.load_model(NAME)
    path = cache / NAME / FILE
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(hub.ChecksumError) as err:
        m2d_hear.load_model(NAME)
    message = str(err.value)
    assert "\n" not in message and "SHA-256" in message and f"delete {cache / NAME}" in message
    with pytest.raises(hub.ChecksumError):  # also when the cached file is named by its path
        m2d_hear.load_model(str(path))


@pytest.mark.parametrize("record", ["{not json", '{"name": "x"}', '{"files": ["checkpoint-300.pth"]}', "[]"])
def test_damaged_checksum_record_is_one_line_on_both_paths(server, cache, record):
    path = hub.resolve_weights(NAME)
    (cache / NAME / hub.CHECKSUM_FILE).write_text(record)
    hub._VERIFIED.clear()
    for weights in (NAME, str(path)):  # weight_file() and resolve_weights() of a cached path
        with pytest.raises(hub.ChecksumError) as err:
            hub.resolve_weights(weights)
        message = str(err.value)
        assert "\n" not in message and hub.CHECKSUM_FILE in message and f"delete {cache / NAME}" in message
        assert isinstance(err.value, m2d_hear.errors.InputError)


def test_download_killed_before_its_unzip_is_unzipped_and_deleted(server, source, cache, monkeypatch):
    """A finished download whose unzip was killed is ours: the next use unzips it without downloading again and
    deletes it; a zip saved by hand is kept."""
    unpack = hub._unpack

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hub, "_unpack", killed)
    with pytest.raises(KeyboardInterrupt):
        hub.resolve_weights(NAME)
    monkeypatch.setattr(hub, "_unpack", unpack)
    assert hub.resolve_weights(NAME) == cache / NAME / FILE
    assert len(server.requests) == 1  # not downloaded again
    assert leftovers(cache) == [NAME, f"{NAME}.lock"]
    # a zip saved by hand stays where it was put
    other = "m2d_vit_base-80x608p16x16-221006-mr7_enconly"
    (cache / f"{other}.zip").write_bytes(release_zip(source, other))
    hub.resolve_weights(other)
    assert (cache / f"{other}.zip").is_file() and (cache / other).is_dir()


def test_a_cached_release_is_hashed_once_per_process(server, cache, monkeypatch):
    """hub hashes with fileio.sha256_file (memoised), so later users of the weights' SHA-256 read nothing again."""
    path = hub.resolve_weights(NAME)
    monkeypatch.setattr(fileio, "_SHA256", {})
    hub._VERIFIED.clear()
    hashed = []
    real = fileio.hashlib.sha256
    monkeypatch.setattr(fileio.hashlib, "sha256", lambda *a: hashed.append(1) or real(*a))
    hub.resolve_weights(NAME)          # verified: hashed once
    sha256_file(path)                  # e.g. the result key of the weights: memoised
    assert len(hashed) == 1 and not hasattr(hub, "sha256_of")


def test_folder_unzipped_by_hand_is_recorded_on_first_use(source, cache):
    folder = cache / NAME
    folder.mkdir(parents=True)
    (folder / FILE).write_bytes(source.read_bytes())
    assert hub.resolve_weights(NAME) == folder / FILE  # no server: nothing is downloaded
    assert sha256_file(folder / FILE) in (folder / hub.CHECKSUM_FILE).read_text()


def test_concurrent_first_uses_download_once(server, cache):
    results, errors = [], []

    def use():
        try:
            results.append(hub.resolve_weights(NAME, progress=False))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(set(results)) == 1 and len(server.requests) == 1


def test_zip_member_outside_its_folder_is_refused(source, cache, monkeypatch):
    srv = LoopbackServer(release_zip(source, members={f"../{NAME}/{FILE}": source.read_bytes()}))
    monkeypatch.setattr(hub, "RELEASES", srv.base)
    try:
        with pytest.raises(hub.WeightsDownloadError, match="outside its folder"):
            hub.resolve_weights(NAME)
    finally:
        srv.stop()
    assert not (cache / NAME).exists() and not (cache.parent / NAME).exists()


def test_unknown_names_and_paths(cache, tmp_path):
    with pytest.raises(hub.UnknownWeightsError, match="close names: m2d_vit_base-80x608p16x16-221006-mr7"):
        m2d_hear.load_model("m2d_vit_base-80x608p16x16-221006-mr8")
    with pytest.raises(m2d_hear.CheckpointError, match="no such weight file"):  # a path stays a path
        m2d_hear.load_model(str(tmp_path / NAME / FILE))
    existing = ck.write_encoder_only(tmp_path / "w", NAME)
    assert hub.resolve_weights(existing) == existing
    assert not cache.exists()  # nothing was downloaded or created


def test_cli_and_default_weights_take_names(server, cache, monkeypatch):
    from evaluation.cli import main

    runner = CliRunner()
    # --weights NAME of an evaluation command resolves (downloads) the name before the command runs
    result = runner.invoke(main, ["linear", "--task", "csv:/nonexistent/meta.csv", "--weights", NAME])
    assert result.exit_code == 1 and (cache / NAME / FILE).is_file()  # downloaded (progress bar), then the task fails
    assert result.output.strip().splitlines()[-1].startswith("Error: /nonexistent/meta.csv")
    result = runner.invoke(main, ["linear", "--task", "us8k", "--weights", "m2d_vit_base-80x608p16x16-221006"])
    assert result.exit_code == 1 and "close names" in result.output
    result = runner.invoke(main, ["weights", "download", NAME, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(cache / NAME / FILE)
    listing = runner.invoke(main, ["weights", "list"]).output
    assert any(line.startswith(NAME + " ") and "cached" in line for line in listing.splitlines())
    result = runner.invoke(main, ["weights", "download", "m2d_vit_base-80x608p16x16-221006"])
    assert result.exit_code == 1 and "close names" in result.output
    monkeypatch.setenv("M2D_DEFAULT_WEIGHTS", NAME)
    assert Path(m2d_hear.load_model().checkpoint_path) == cache / NAME / FILE
