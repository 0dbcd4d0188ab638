"""MNIST, read from the original IDX gzip files (chapter 06).

:func:`load_mnist` looks for the four original files in ``<folder>/mnist/``,
where ``<folder>`` is, first found: the ``root`` argument, the environment
variable ``QLIB_DATA``, or a per-user cache (``$XDG_CACHE_HOME/qlib``, else
``~/.cache/qlib``).  A missing file is downloaded once from the mirrors in
:data:`MIRRORS`, tried in order, and checked against :data:`CHECKSUMS` (size
and SHA-256 of the files LeCun, Cortes and Burges published).  A download is
written to a temporary file in the same folder and moved into place with
``os.replace`` only once it is complete and verified, so a file under its
final name is never half-written.  A file already present whose checksum is
wrong is refused, never overwritten: it was put there by hand, and it may be
another dataset under the same names (Fashion-MNIST uses them too).

Progress is a plain line on stderr, rewritten in place: the course adds no
dependency (such as tqdm) for one download per machine.

Taught in ``notebooks/06_kmeans_quantization.ipynb``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CHECKSUMS",
    "ENV_VAR",
    "MIRRORS",
    "TIMEOUT",
    "DownloadError",
    "data_folder",
    "load_mnist",
]

#: The environment variable that names the data folder (it holds ``mnist/``).
ENV_VAR = "QLIB_DATA"

#: Base URLs tried in order; a file's URL is the base followed by its name.
#: The first is the mirror torchvision uses, the second the CVDF copy on
#: Google Cloud Storage (yann.lecun.com itself no longer serves the files).
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: Seconds to wait for a connection and for each read; a stalled server fails
#: after this long instead of hanging.
TIMEOUT = 30.0

#: File name -> (bytes, SHA-256) of the original gzip files.
CHECKSUMS: dict[str, tuple[int, str]] = {
    "train-images-idx3-ubyte.gz": (
        9912422,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    "train-labels-idx1-ubyte.gz": (
        28881,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    "t10k-images-idx3-ubyte.gz": (
        1648877,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        4542,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
}

_SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
_CHUNK = 1 << 16


class DownloadError(OSError):
    """No mirror delivered a verified copy of a file."""


def data_folder(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds ``mnist/``: ``root``, else ``$QLIB_DATA``, else
    the per-user cache (``$XDG_CACHE_HOME/qlib`` or ``~/.cache/qlib``).

    Example:
        >>> str(data_folder("/srv/course-data"))
        '/srv/course-data'
    """
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "qlib"


def load_mnist(
    split: Literal["train", "test"] = "train",
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """The MNIST ``split`` as ``(images, labels)``: uint8 arrays of shape
    ``(N, 28, 28)`` (0 background to 255 ink) and ``(N,)`` (digits 0-9);
    N is 60000 for ``"train"`` and 10000 for ``"test"``.

    Files are read from ``data_folder(root) / "mnist"``.  A missing file is
    downloaded and verified first, unless ``download=False``, which raises
    ``FileNotFoundError`` instead.  Every file is checked against
    :data:`CHECKSUMS` on every load.

    Example (``download=False``: reads the files already in the folder):
        >>> images, labels = load_mnist("test", download=False)
        >>> images.shape, images.dtype, labels.shape, labels.dtype
        ((10000, 28, 28), dtype('uint8'), (10000,), dtype('uint8'))
        >>> labels[:10]
        array([7, 2, 1, 0, 4, 1, 4, 9, 5, 9], dtype=uint8)
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    folder = data_folder(root) / "mnist"
    arrays = []
    for name, magic in zip(_SPLITS[split], (_IMAGES_MAGIC, _LABELS_MAGIC), strict=True):
        size, sha256 = CHECKSUMS[name]
        path = folder / name
        if not path.exists():
            if not download:
                raise FileNotFoundError(
                    f"{path} is missing (download=False).\n" + _by_hand(folder)
                )
            _fetch(name, folder, mirrors=MIRRORS, size=size, sha256=sha256)
        raw = path.read_bytes()
        got = hashlib.sha256(raw).hexdigest()
        if len(raw) != size or got != sha256:
            raise ValueError(
                f"{path} is not the original MNIST file: expected {size} bytes "
                f"with SHA-256 {sha256}, got {len(raw)} bytes with SHA-256 {got}. "
                "It may be a partial copy or another dataset under the same name "
                "(Fashion-MNIST); it was left as it is. Delete it to download "
                "it again, or replace it with the original."
            )
        arrays.append(_parse_idx(raw, path, magic))
    images, labels = arrays
    if len(images) != len(labels):
        raise ValueError(
            f"{folder}: {len(images)} images in {_SPLITS[split][0]} but "
            f"{len(labels)} labels in {_SPLITS[split][1]}"
        )
    return images, labels


def _parse_idx(gz: bytes, path: Path, magic: int) -> NDArray[np.uint8]:
    """Decode one gzip-compressed IDX file strictly: the ``magic`` number
    expected (images or labels), 28 x 28 images, and the exact size."""
    try:
        raw = gzip.decompress(gz)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: not a valid gzip file ({exc})") from exc
    what = "images" if magic == _IMAGES_MAGIC else "labels"
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") != magic:
        found = f"0x{int.from_bytes(raw[:4], 'big'):08x}" if len(raw) >= 4 else None
        raise ValueError(
            f"{path}: IDX magic number of MNIST {what} must be 0x{magic:08x}; "
            f"got {found or 'a file shorter than 4 bytes'}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: IDX header needs {header} bytes; the file has {len(raw)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    if shape[1:] != (28, 28)[: ndim - 1]:
        raise ValueError(f"{path}: MNIST images must be 28 x 28; got {shape[1:]}")
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(
            f"{path}: IDX header announces shape {shape}, {expected} bytes; "
            f"the decompressed file has {len(raw)}"
        )
    # a copy, so the learner gets an ordinary writable array
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape).copy()


def _fetch(
    name: str,
    folder: Path,
    *,
    mirrors: tuple[str, ...] | list[str],
    size: int,
    sha256: str,
    timeout: float | None = None,
) -> Path:
    """Download ``name`` into ``folder`` from the first mirror that delivers
    exactly ``size`` bytes with this ``sha256``; return its path.

    Each failure (HTTP error, refused connection, timeout, short, long or
    corrupt body) is remembered and the next mirror tried; nothing is left
    behind.  When all fail, :class:`DownloadError` lists them and says where
    to put the file by hand.  ``timeout`` defaults to :data:`TIMEOUT`.
    """
    timeout = TIMEOUT if timeout is None else timeout
    folder.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in mirrors:
        url = mirror + name
        try:
            _download(url, folder / name, size, sha256, timeout)
            return folder / name
        except TimeoutError:
            errors.append(f"  {url}: no answer within {timeout:g} s")
        except (OSError, ValueError) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # it holds the response and its socket
            errors.append(f"  {url}: {type(exc).__name__}: {exc}")
    raise DownloadError(
        f"could not download {name}; the mirrors tried:\n"
        + "\n".join(errors)
        + "\n"
        + _by_hand(folder)
    )


def _download(url: str, dest: Path, size: int, sha256: str, timeout: float) -> None:
    """Stream ``url`` into a temporary file beside ``dest``, verify it, then
    move it to ``dest``; on any failure remove the temporary file."""
    request = urllib.request.Request(url, headers={"User-Agent": "qlib"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        announced = response.headers.get("Content-Length")
        if announced is not None and announced.strip() != str(size):
            raise ValueError(f"the server announces {announced} bytes; expected {size}")
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        try:
            digest = hashlib.sha256()
            got = 0
            with os.fdopen(fd, "wb") as out:
                shown = -1
                # read one byte past the expected size to notice a longer body
                while got <= size and (chunk := response.read(_CHUNK)):
                    out.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    shown = _progress(dest.name, got, size, shown)
                if shown >= 0:
                    print(file=sys.stderr)
                if got < size:
                    raise ValueError(
                        f"truncated body: expected {size} bytes, got {got}"
                    )
                if got > size:
                    raise ValueError(
                        f"body too long: expected {size} bytes, got at least {got}"
                    )
                if digest.hexdigest() != sha256:
                    raise ValueError(
                        f"corrupt body: expected SHA-256 {sha256}, "
                        f"got {digest.hexdigest()} ({got} bytes)"
                    )
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _progress(name: str, got: int, size: int, shown: int) -> int:
    """Rewrite the progress line when the whole percentage changes."""
    percent = 100 * min(got, size) // size
    if percent != shown:
        print(
            f"\rdownloading {name}: {percent:3d}% "
            f"({got / 1e6:.1f} of {size / 1e6:.1f} MB)",
            end="",
            file=sys.stderr,
            flush=True,
        )
    return percent


def _by_hand(folder: Path) -> str:
    env = os.environ.get(ENV_VAR)
    now = f"it is now {env!r}" if env else "it is now unset"
    names = ", ".join(CHECKSUMS)
    return (
        f"To install MNIST by hand, copy the original files ({names}) into\n"
        f"  {folder}\n"
        f"or set the environment variable {ENV_VAR} to a folder whose mnist/ "
        f"subfolder holds them ({now})."
    )
