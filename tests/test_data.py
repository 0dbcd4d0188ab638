"""qlib.data: the real MNIST files against the numbers published with them,
and the downloader against a local HTTP server on 127.0.0.1 (never the
network) serving tiny IDX files built here, with their own checksums."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import re
import socket
import threading
import time

import numpy as np
import pytest

from qlib import data

NAMES = list(data.CHECKSUMS)
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"

# From /work/shared/data/README.md (the dataset's README, not this code).
LABEL_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
# MD5 of the decompressed files: re-encoding the arrays must reproduce them,
# which pins every pixel and label (stronger than a few pixel sums, for which
# no independent published value exists).
DECOMPRESSED_MD5 = {
    ("train", 0): "6bbc9ace898e44ae57da46a324031adb",
    ("train", 1): "a25bea736e30d166cdddb491f175f624",
    ("test", 0): "2646ac647ad5339dbf082846283269ea",
    ("test", 1): "27ae3e4e09519cfbb04c329615203637",
}


# --- the real files -----------------------------------------------------------


@pytest.fixture(scope="module")
def mnist(mnist_folder):
    return {split: data.load_mnist(split, download=False) for split in LABEL_COUNTS}


@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_real_shapes_dtypes_ranges(mnist, split, n):
    images, labels = mnist[split]
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    assert set(np.unique(labels)) == set(range(10))
    assert images.flags.writeable and labels.flags.writeable


@pytest.mark.parametrize("split", ["train", "test"])
def test_real_label_counts_match_the_readme(mnist, split):
    counts = np.bincount(mnist[split][1], minlength=10)
    assert counts.tolist() == LABEL_COUNTS[split]


@pytest.mark.parametrize("split", ["train", "test"])
def test_real_arrays_re_encode_to_the_published_decompressed_md5(mnist, split):
    images, labels = mnist[split]
    n = len(labels)
    idx3 = (0x803).to_bytes(4, "big") + np.array([n, 28, 28], ">u4").tobytes()
    idx1 = (0x801).to_bytes(4, "big") + np.array([n], ">u4").tobytes()
    assert (
        hashlib.md5(idx3 + images.tobytes()).hexdigest() == DECOMPRESSED_MD5[split, 0]
    )
    assert (
        hashlib.md5(idx1 + labels.tobytes()).hexdigest() == DECOMPRESSED_MD5[split, 1]
    )


def test_checksums_table_matches_the_real_files(mnist_folder):
    for name, (size, sha256) in data.CHECKSUMS.items():
        raw = (mnist_folder / "mnist" / name).read_bytes()
        assert (len(raw), hashlib.sha256(raw).hexdigest()) == (size, sha256)


def test_mirrors_are_at_least_two_https_bases():
    assert len(data.MIRRORS) >= 2
    assert all(m.startswith("https://") and m.endswith("/") for m in data.MIRRORS)


# --- where the files are looked for ---------------------------------------------


def test_data_folder_root_then_env_then_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("QLIB_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_folder(tmp_path / "root") == tmp_path / "root"
    assert data.data_folder() == tmp_path / "env"
    monkeypatch.setenv("QLIB_DATA", "")
    assert data.data_folder() == tmp_path / "xdg" / "qlib"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.data_folder() == tmp_path / "home" / ".cache" / "qlib"


def test_split_must_be_train_or_test(tmp_path):
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test'; got 'val'"):
        data.load_mnist("val", root=tmp_path)


def test_missing_file_without_download_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=False") as info:
        data.load_mnist("test", root=tmp_path, download=False)
    assert str(tmp_path / "mnist") in str(info.value)
    assert "QLIB_DATA" in str(info.value)
    assert not (tmp_path / "mnist").exists()  # nothing created


# --- tiny fixture files and a local server --------------------------------------


def idx_gz(magic: int, shape: tuple[int, ...], body) -> bytes:
    header = magic.to_bytes(4, "big") + np.array(shape, ">u4").tobytes()
    return gzip.compress(header + bytes(body), mtime=0)


@pytest.fixture
def tiny(monkeypatch):
    """Tiny valid MNIST files (5 train, 3 test images) whose sizes and hashes
    replace the real ones in ``data.CHECKSUMS``."""
    rng = np.random.default_rng(6)
    arrays = {}
    for split, n in [("train", 5), ("test", 3)]:
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        arrays[split] = images, labels
    files = {
        "train-images-idx3-ubyte.gz": idx_gz(0x803, (5, 28, 28), arrays["train"][0]),
        "train-labels-idx1-ubyte.gz": idx_gz(0x801, (5,), arrays["train"][1]),
        TEST_IMAGES: idx_gz(0x803, (3, 28, 28), arrays["test"][0]),
        TEST_LABELS: idx_gz(0x801, (3,), arrays["test"][1]),
    }
    checksums = {n: (len(b), hashlib.sha256(b).hexdigest()) for n, b in files.items()}
    monkeypatch.setattr(data, "CHECKSUMS", checksums)

    def install(folder, name, body=None):
        (folder / "mnist").mkdir(parents=True, exist_ok=True)
        (folder / "mnist" / name).write_bytes(files[name] if body is None else body)

    return files, arrays, install


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.routes[path] = (body, how)``; anything else is a 404."""

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path not in self.server.routes:
            self.send_error(404)
            return
        body, how = self.server.routes[self.path]
        self.send_response(200)
        if how != "no-length":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if how == "ok" or how == "no-length":
            self.wfile.write(body)
        elif how == "half":  # Content-Length promises more than is sent
            self.wfile.write(body[: len(body) // 2])
        elif how == "stall":  # half the body, then silence
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.server.release.wait(10)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.routes, httpd.requests, httpd.release = {}, [], threading.Event()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def refused():
    """Two base URLs whose ports refuse connections (bound, never listening)."""
    with socket.socket() as one, socket.socket() as two:
        one.bind(("127.0.0.1", 0))
        two.bind(("127.0.0.1", 0))
        yield [f"http://127.0.0.1:{s.getsockname()[1]}/mnist/" for s in (one, two)]


@pytest.fixture
def silent():
    """A base URL whose server accepts connections and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as sock:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mnist/"


@pytest.fixture(autouse=True)
def _no_proxy_for_localhost(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


def left_in(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def fetch(name, folder, mirrors, timeout=5.0):
    size, sha256 = data.CHECKSUMS[name]
    return data._fetch(
        name, folder, mirrors=mirrors, size=size, sha256=sha256, timeout=timeout
    )


# --- downloading ----------------------------------------------------------------


def test_download_then_read_from_the_cache(tiny, server, monkeypatch, tmp_path, capsys):
    files, arrays, _ = tiny
    for name in (TEST_IMAGES, TEST_LABELS):
        server.routes[f"/m/{name}"] = files[name], "ok"
    monkeypatch.setattr(data, "MIRRORS", (server.base + "/m/",))
    images, labels = data.load_mnist("test", root=tmp_path)
    np.testing.assert_array_equal(images, arrays["test"][0])
    np.testing.assert_array_equal(labels, arrays["test"][1])
    assert left_in(tmp_path / "mnist") == sorted([TEST_IMAGES, TEST_LABELS])
    assert f"downloading {TEST_IMAGES}: 100%" in capsys.readouterr().err
    requests = len(server.requests)
    data.load_mnist("test", root=tmp_path)  # present and verified: no request
    assert len(server.requests) == requests == 2


def test_404_on_the_first_mirror_then_the_second(tiny, server, tmp_path):
    files = tiny[0]
    server.routes[f"/b/{TEST_LABELS}"] = files[TEST_LABELS], "ok"
    path = fetch(TEST_LABELS, tmp_path, [server.base + "/a/", server.base + "/b/"])
    assert path.read_bytes() == files[TEST_LABELS]
    assert server.requests == [f"/a/{TEST_LABELS}", f"/b/{TEST_LABELS}"]
    assert left_in(tmp_path) == [TEST_LABELS]


def test_corrupt_body_is_reported_and_removed(tiny, server, tmp_path):
    body = bytearray(tiny[0][TEST_IMAGES])
    body[-20] ^= 0xFF  # same size, one byte changed
    server.routes[f"/m/{TEST_IMAGES}"] = bytes(body), "ok"
    size, sha256 = data.CHECKSUMS[TEST_IMAGES]
    got = hashlib.sha256(body).hexdigest()
    with pytest.raises(
        data.DownloadError,
        match=rf"could not download {TEST_IMAGES}(.|\n)*"
        rf"corrupt body: expected SHA-256 {sha256}, got {got} \({size} bytes\)",
    ):
        fetch(TEST_IMAGES, tmp_path, [server.base + "/m/"])
    assert left_in(tmp_path) == []  # neither the file nor a temporary one


@pytest.mark.parametrize("how", ["half", "no-length"])
def test_truncated_body_is_reported_and_removed(tiny, server, tmp_path, how):
    body = tiny[0][TEST_IMAGES]
    server.routes[f"/m/{TEST_IMAGES}"] = (
        body if how == "half" else body[: len(body) // 2],
        how,
    )
    with pytest.raises(
        data.DownloadError,
        match=rf"truncated body: expected {len(body)} bytes, got {len(body) // 2}",
    ):
        fetch(TEST_IMAGES, tmp_path, [server.base + "/m/"])
    assert left_in(tmp_path) == []


@pytest.mark.parametrize(
    "how, message",
    [("ok", r"the server announces \d+ bytes; expected"), ("no-length", "too long")],
)
def test_longer_body_is_refused(tiny, server, tmp_path, how, message):
    server.routes[f"/m/{TEST_LABELS}"] = tiny[0][TEST_LABELS] + b"x" * 100_000, how
    with pytest.raises(data.DownloadError, match=message):
        fetch(TEST_LABELS, tmp_path, [server.base + "/m/"])
    assert left_in(tmp_path) == []


def test_server_that_never_answers_times_out(tiny, silent, monkeypatch, tmp_path):
    monkeypatch.setattr(data, "MIRRORS", (silent,))
    monkeypatch.setattr(data, "TIMEOUT", 0.3)
    start = time.monotonic()
    with pytest.raises(data.DownloadError, match=r"no answer within 0.3 s"):
        data.load_mnist("test", root=tmp_path)
    assert time.monotonic() - start < 5
    assert left_in(tmp_path / "mnist") == []


def test_server_that_stalls_mid_body_times_out(tiny, server, tmp_path):
    server.routes[f"/m/{TEST_IMAGES}"] = tiny[0][TEST_IMAGES], "stall"
    start = time.monotonic()
    with pytest.raises(data.DownloadError, match=r"no answer within 0.3 s"):
        fetch(TEST_IMAGES, tmp_path, [server.base + "/m/"], timeout=0.3)
    assert time.monotonic() - start < 5
    assert left_in(tmp_path) == []  # the temporary file was removed


def test_offline_names_file_mirrors_folder_and_env_var(
    tiny, refused, monkeypatch, tmp_path
):
    monkeypatch.setattr(data, "MIRRORS", tuple(refused))
    with pytest.raises(data.DownloadError) as info:
        data.load_mnist("test", root=tmp_path)
    message = str(info.value)
    assert message.startswith(f"could not download {TEST_IMAGES}")
    for mirror in refused:
        assert re.search(
            re.escape(mirror + TEST_IMAGES) + ".*Connection refused", message
        )
    assert f"into\n  {tmp_path / 'mnist'}\n" in message
    assert "environment variable QLIB_DATA" in message
    assert left_in(tmp_path / "mnist") == []


def test_present_but_corrupt_file_is_refused_and_left_alone(
    tiny, refused, monkeypatch, tmp_path
):
    _, _, install = tiny
    install(tmp_path, TEST_IMAGES)
    install(tmp_path, TEST_LABELS, b"not the labels")
    monkeypatch.setattr(data, "MIRRORS", tuple(refused))
    size, sha256 = data.CHECKSUMS[TEST_LABELS]
    with pytest.raises(
        ValueError,
        match=rf"{re.escape(str(tmp_path / 'mnist' / TEST_LABELS))} is not the "
        rf"original MNIST file: expected {size} bytes with SHA-256 {sha256}, got 14 "
        r"bytes(.|\n)*Delete it to download it again",
    ):
        data.load_mnist("test", root=tmp_path)
    assert (tmp_path / "mnist" / TEST_LABELS).read_bytes() == b"not the labels"


# --- strict IDX parsing -----------------------------------------------------------

PIXELS = bytes(3 * 28 * 28)
BAD_IMAGES = {
    "labels magic": (
        idx_gz(0x801, (3,), bytes(3)),
        r"magic number of MNIST images must be 0x00000803; got 0x00000801",
    ),
    "wrong magic": (idx_gz(0x804, (3, 28, 28), PIXELS), r"got 0x00000804"),
    "27 x 28": (
        idx_gz(0x803, (3, 27, 28), bytes(3 * 27 * 28)),
        r"must be 28 x 28; got \(27, 28\)",
    ),
    "short": (
        idx_gz(0x803, (3, 28, 28), PIXELS[:-1]),
        r"shape \(3, 28, 28\), 2368 bytes; the decompressed file has 2367",
    ),
    "long": (
        idx_gz(0x803, (3, 28, 28), PIXELS + b"\0"),
        r"2368 bytes; the decompressed file has 2369",
    ),
    "header cut": (
        gzip.compress(b"\0\0\x08\x03\0\0", mtime=0),
        r"header needs 16 bytes; the file has 6",
    ),
    "empty": (gzip.compress(b"", mtime=0), r"got a file shorter than 4 bytes"),
    "not gzip": (b"\x1f\x8bnot really", r"not a valid gzip file"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_idx_is_a_value_error_naming_the_file(tiny, monkeypatch, tmp_path, case):
    body, message = BAD_IMAGES[case]
    _, _, install = tiny
    install(tmp_path, TEST_IMAGES, body)
    install(tmp_path, TEST_LABELS)
    data.CHECKSUMS[TEST_IMAGES] = len(body), hashlib.sha256(body).hexdigest()
    path = re.escape(str(tmp_path / "mnist" / TEST_IMAGES))
    with pytest.raises(ValueError, match=rf"^{path}: .*({message})"):
        data.load_mnist("test", root=tmp_path, download=False)


def test_image_and_label_counts_must_agree(tiny, tmp_path):
    _, _, install = tiny
    labels = idx_gz(0x801, (2,), b"\1\2")
    install(tmp_path, TEST_IMAGES)
    install(tmp_path, TEST_LABELS, labels)
    data.CHECKSUMS[TEST_LABELS] = len(labels), hashlib.sha256(labels).hexdigest()
    with pytest.raises(ValueError, match=rf"3 images in {TEST_IMAGES} but 2 labels"):
        data.load_mnist("test", root=tmp_path, download=False)


def test_environment_variable_is_used_without_root(tiny, monkeypatch, tmp_path):
    _, arrays, install = tiny
    install(tmp_path, TEST_IMAGES)
    install(tmp_path, TEST_LABELS)
    monkeypatch.setenv("QLIB_DATA", os.fspath(tmp_path))
    images, _ = data.load_mnist("test", download=False)
    np.testing.assert_array_equal(images, arrays["test"][0])
