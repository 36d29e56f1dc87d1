"""What the worker processes run (see :mod:`app.jobs`). No Qt here.

Every function takes ``send(kind, payload)`` to report and ``cancel()`` to poll, and
returns the job's result, which must pickle. TensorFlow, librosa and the decoders are
imported here, in the children, never in the GUI process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.training import TrainJob
from avsc_core.progress import Cancelled, Progress

log = logging.getLogger(__name__)

Send = Callable[..., None]
Cancel = Callable[[], bool]

_bundles: dict[tuple[str, float], Any] = {}


def warm_up_models() -> None:
    """Import the model stack now, so the first file is not slowed by it."""
    import avsc_core.inference.classify
    import avsc_core.inference.predictor
    import avsc_core.models  # noqa: F401


def warm_up_media() -> None:
    """Import the decoders and librosa (with numba), and build the filter banks."""
    import cv2  # noqa: F401

    from app.preview import preview_axes
    from avsc_core.config import FeatureConfig, MediaConfig

    preview_axes(FeatureConfig(), MediaConfig())


WARM_UPS: dict[str, Callable[[], None]] = {"classifier": warm_up_models, "media": warm_up_media}


def preview(file: str, manifest: dict | None, *, send: Send, cancel: Cancel) -> None:
    """A file's facts first, then the spectrogram axes, then each segment's preview.

    Decoded with the model's settings when there is a model (``manifest``), so the
    segments are those the model classifies.
    """
    from app.preview import iter_previews, preview_axes
    from avsc_core.config import FeatureConfig, MediaConfig
    from avsc_core.media import probe

    info = probe(file)
    send("item", ("facts", info))
    media = MediaConfig.from_dict(manifest["media"]) if manifest else MediaConfig()
    features = FeatureConfig.from_dict(manifest["features"]) if manifest else FeatureConfig()
    send("item", ("axes", preview_axes(features, media)))
    for segment in iter_previews(file, info, media, features, cancel=cancel):
        send("item", ("segment", segment))


def _predictor(model: str) -> Any:
    """A predictor for ``model``, kept between requests (reloaded if the bundle changed)."""
    from avsc_core.bundle import load_bundle
    from avsc_core.bundle.manifest import MANIFEST
    from avsc_core.inference.predictor import Predictor

    manifest = Path(model) / MANIFEST
    key = (str(Path(model).resolve()), manifest.stat().st_mtime if manifest.exists() else 0.0)
    if key not in _bundles:
        _bundles.clear()
        _bundles[key] = Predictor(load_bundle(model))
    return _bundles[key]


def classify(
    file: str, model: str, *, send: Send, cancel: Cancel,
    segment_seconds: float | None = None, hop_seconds: float | None = None,
) -> dict[str, Any]:
    """Classify one file; returns the contract's JSON object, with ``runtime`` as
    ``avsc classify --json`` gives it and ``networks`` saying how they ran."""
    from avsc_core.inference.classify import classify_file

    predictor = _predictor(model)
    result = classify_file(
        file, predictor, segment_seconds, hop_seconds,
        progress=lambda event: send("progress", event), cancel=cancel,
    )
    return {**result.to_dict(), "runtime": predictor.runtime,
            "networks": predictor.describe()}


REQUESTS: dict[str, Callable[..., Any]] = {"classify": classify, "preview": preview}


def label(
    folder: str, model: str, out_csv: str, recursive: bool, resume: bool, jobs: int,
    min_confidence: float | None = None, frames_per_second: float | None = None, *,
    send: Send, cancel: Cancel,
) -> dict[str, Any]:
    """Label a folder into a CSV, sending each row as it is written."""
    from avsc_core.label import label_folder

    summary = label_folder(
        folder, model, out_csv, recursive=recursive, resume=resume, jobs=jobs,
        min_confidence=min_confidence, frames_per_second=frames_per_second,
        progress=lambda event: send("progress", event), cancel=cancel,
        on_row=lambda row, result: send("row", row),
    )
    return {
        "out_csv": str(summary.out_csv), "found": summary.found,
        "already_done": summary.already_done, "labelled": summary.labelled,
        "failed": summary.failed, "seconds": summary.seconds,
    }


def adapt(
    model: str, labels_csv: str, out: str, cache_dir: str | None,
    *, send: Send, cancel: Cancel,
) -> dict[str, Any]:
    """New heads for ``model`` learnt from the reviewed rows of ``labels_csv``, at ``out``;
    returns the new bundle's folder and what ``avsc adapt`` prints about it."""
    from avsc_core.adapt import adapt_model
    from avsc_core.cli.adapt import format_summary

    summary = adapt_model(model, labels_csv, out, cache_dir=cache_dir,
                          progress=lambda event: send("progress", event), cancel=cancel)
    return {"model": str(summary.out), "summary": format_summary(summary)}


def _make_sample_data(job: TrainJob, send: Send, cancel: Cancel) -> None:
    """Write the sample dataset unless the same one is already complete there."""
    import json

    from avsc_core.atomic import write_json
    from avsc_core.sampledata import generate_sample_dataset

    assert job.sample is not None
    marker = Path(job.sample.out) / ".avsc-sample.json"
    wanted = job.sample.to_dict()
    try:
        if json.loads(marker.read_text(encoding="utf-8")) == wanted:
            return
    except (OSError, ValueError):
        pass

    def progress(event: Progress) -> None:
        # The generator has no cancel argument; it reports after every clip.
        if cancel():
            raise Cancelled()
        send("progress", event)

    generate_sample_dataset(
        job.sample.out, classes=list(job.sample.classes), per_class=job.sample.per_class,
        seconds=job.sample.seconds, seed=job.sample.seed, progress=progress,
    )
    write_json(marker, wanted)


def train(job: TrainJob, *, send: Send, cancel: Cancel) -> dict[str, Any]:
    """Train (or resume) a model; returns its folder and its test-split evaluation."""
    from avsc_core.train import train_model
    from avsc_core.train.settings import parse_devices

    if job.sample is not None and not job.resume:
        _make_sample_data(job, send, cancel)
    # A resumed run keeps the split it drew (fractions given on resume must equal it).
    split = {} if job.resume else {"val_fraction": job.val_fraction,
                                   "test_fraction": job.test_fraction}
    out = train_model(
        job.data, job.out, job.config, layout=job.layout, resume=job.resume, **split,
        jobs=job.jobs or None, cache_dir=job.cache_dir, devices=parse_devices(job.devices),
        progress=lambda event: send("progress", event), cancel=cancel,
    )
    from app.evaluation import clip_predictions

    evaluation = clip_predictions(
        out, job.data, job.layout, progress=lambda event: send("progress", event),
        cancel=cancel, cache_dir=job.cache_dir,
    )
    return {"model": str(out), "evaluation": evaluation}
