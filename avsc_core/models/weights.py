"""ImageNet weights of the visual backbones: where they are cached and how they get there.

Keras applications download their weights into ``~/.keras/models`` with no time limit. avsc
keeps its own copy in ``platformdirs.user_cache_dir("avsc")/keras`` (override with the
``AVSC_WEIGHTS_DIR`` environment variable), downloads with a timeout, checks the file hash
published by Keras, and hands the application a local path, so building a model offline
either finds the file at once or fails at once with a message saying where to put it.

Lookup order for ``weights="imagenet"``:

1. our cache, under Keras's file name (what :func:`visual_weights_path` returns);
2. our cache, ``<stem>.weights.h5``: the same weights saved by Keras 3 (put there by hand;
   to start from other weights, ``TrainConfig.visual_weights`` takes a file or a folder);
3. Keras's own cache, ``$KERAS_HOME/models`` (default ``~/.keras/models``), in case an
   earlier Keras session downloaded it;
4. a download into our cache.

:func:`resolve_imagenet_files` resolves every file a training run needs at once, before it
decodes anything: once a download fails for want of a network, the others are not tried
(no second time-out), and one line names every missing file and where it may go.
"""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import platformdirs

from avsc_core.atomic import atomic_write
from avsc_core.errors import AvscError

WEIGHTS_DIR_ENV = "AVSC_WEIGHTS_DIR"
CONNECT_TIMEOUT_S = 10.0
_KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclass(frozen=True)
class ImagenetWeights:
    """One published no-top ImageNet weights file (values from ``keras.applications``)."""

    arch: str
    filename: str
    url: str
    file_hash: str  # md5 (32 hex digits) or sha256 (64), as Keras publishes them

    @property
    def imported_filename(self) -> str:
        return f"{Path(self.filename).stem}.weights.h5"


IMAGENET_WEIGHTS: dict[str, ImagenetWeights] = {
    "vis-inc": ImagenetWeights(
        arch="inception_v3",
        filename="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url=_KERAS_URL + "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        file_hash="bcbd6486424b2319ff4ef7d526e38f63",
    ),
    "vis-conv": ImagenetWeights(
        arch="convnext_tiny",
        filename="convnext_tiny_notop.h5",
        url=_KERAS_URL + "convnext/convnext_tiny_notop.h5",
        file_hash="d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
    ),
}


def weights_cache_dir() -> Path:
    """Folder of avsc's pretrained-weights cache (``$AVSC_WEIGHTS_DIR`` if set)."""
    override = os.environ.get(WEIGHTS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("avsc")) / "keras"


def _spec(name: str) -> ImagenetWeights:
    try:
        return IMAGENET_WEIGHTS[name]
    except KeyError:
        raise ValueError(
            f"no ImageNet weights for {name!r}; known: {', '.join(IMAGENET_WEIGHTS)}"
        ) from None


def visual_weights_path(name: str) -> Path:
    """Where the ImageNet weights file of visual backbone ``name`` belongs in the cache.

    Parameters
    ----------
    name : str
        ``"vis-inc"`` or ``"vis-conv"``.
    """
    return weights_cache_dir() / _spec(name).filename


def _keras_cache_path(spec: ImagenetWeights) -> Path:
    # Same rule as keras.src.backend.config: $KERAS_HOME, else ~/.keras.
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return Path(home).expanduser() / "models" / spec.filename


def _urlopen(url: str, timeout: float) -> IO[bytes]:
    """Open ``url``, giving up after ``timeout`` seconds even while DNS is stuck.

    ``urlopen``'s own timeout covers the socket, not name resolution, so the call runs in a
    daemon thread that is abandoned when the deadline passes.
    """
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["response"] = urllib.request.urlopen(url, timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="avsc-weights-download", daemon=True)
    thread.start()
    thread.join(timeout)
    if "response" in result:
        return result["response"]  # type: ignore[return-value]
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    raise TimeoutError(f"no answer within {timeout:.0f} s")


def _download(spec: ImagenetWeights, target: Path) -> None:
    """Download ``spec`` into ``target`` atomically, checking its hash."""
    digest = hashlib.md5() if len(spec.file_hash) == 32 else hashlib.sha256()
    with _urlopen(spec.url, CONNECT_TIMEOUT_S) as response, atomic_write(target, "wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != spec.file_hash:
            # Raising inside atomic_write leaves no partial file behind.
            raise ValueError(f"downloaded file has hash {digest.hexdigest()}, not {spec.file_hash}")


def _missing_message(missing: dict[str, str]) -> str:
    """One line for the backbones in ``missing`` (name -> why its download failed)."""
    specs = {name: _spec(name) for name in missing}
    what = ", ".join(f"{name} ({specs[name].arch})" for name in missing)
    files = " and ".join(str(visual_weights_path(name)) for name in missing)
    places = f"{weights_cache_dir()} and {_keras_cache_path(next(iter(specs.values()))).parent}"
    downloads = "; ".join(f"{specs[name].url}: {reason}" for name, reason in missing.items())
    return (
        f"ImageNet weights for {what} are not available: {files} "
        f"{'is' if len(missing) == 1 else 'are'} missing (looked in {places}) and "
        f"downloading failed ({downloads}). Download "
        f"{'that file' if len(missing) == 1 else 'those files'} on a connected machine and "
        f"copy {'it' if len(missing) == 1 else 'them'} to {weights_cache_dir()}, or pass "
        "--visual-weights FOLDER holding them (a single file for one visual backbone), "
        "or --visual-weights none to start from random weights"
    )


def _cached(spec: ImagenetWeights) -> Path | None:
    cache = weights_cache_dir()
    for candidate in (cache / spec.filename, cache / spec.imported_filename,
                      _keras_cache_path(spec)):
        if candidate.is_file():
            return candidate
    return None


def resolve_imagenet_files(names: Sequence[str]) -> dict[str, Path]:
    """Local paths of the ImageNet weights of every backbone in ``names``, cached or
    downloaded (not tried again once one download found no network).

    Raises
    ------
    AvscError
        One line naming every file that is in no cache and could not be downloaded
        (offline, timeout, bad hash), the places looked in, the URLs and the alternatives.
    """
    found: dict[str, Path] = {}
    missing: dict[str, str] = {}
    offline = ""
    for name in dict.fromkeys(names):
        spec = _spec(name)
        cached = _cached(spec)
        if cached is not None:
            found[name] = cached
            continue
        if offline:
            missing[name] = f"not tried: {offline}"
            continue
        target = weights_cache_dir() / spec.filename
        try:
            _download(spec, target)
        except OSError as exc:  # no network, a time-out (URLError is an OSError)
            offline = str(exc) or type(exc).__name__
            missing[name] = offline
        except ValueError as exc:  # a bad hash: the network works
            missing[name] = str(exc)
        else:
            found[name] = target
    if missing:
        raise AvscError(_missing_message(missing))
    return found


def resolve_imagenet_weights(name: str) -> Path:
    """Local path of the ImageNet weights of ``name``, downloading them if needed.

    Raises
    ------
    AvscError
        When the file is in no cache and cannot be downloaded (offline, timeout, bad hash).
        The message names the missing file, its URL and the alternatives.
    """
    return resolve_imagenet_files([name])[name]
