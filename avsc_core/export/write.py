"""``avsc export``: convert every network of a bundle and record the copies in its manifest.

Files go to ``<bundle>/exports/<format>-<precision>-<stamp>/`` (one ``.tflite``/``.onnx`` per
backbone and head). The folder is complete before the manifest names it, and a re-export
replaces the manifest entry before the old folder is deleted, so a bundle never points at
half-written files. Each network is checked against its Keras original on the same inputs
right after conversion; a network computed in fp32 (every network of an fp32 export, the
heads of every export, an int8 export's unquantised backbones unless OpenVINO computes
them in bf16) whose probabilities differ by more than :data:`FP32_TOLERANCE` is refused.

The fusion heads are exported in fp32 whatever the precision: they are a few thousand
multiplications, and this keeps the fused answer as close to Keras as the backbones allow.

An ONNX bf16 export holds the fp32 graphs, recorded as bf16 so that OpenVINO computes
them in bf16 (:func:`avsc_core.inference.runtime.openvino_precision`); like an int8 one, it
is checked against Keras but its backbones are not refused for their differences.

An ONNX int8 export is calibrated: ``calibration`` files (clips like those the model will
label) are decoded once into the visual backbones' frames, which fix the int8 graphs' ranges
(:mod:`avsc_core.export.quantize`); the manifest records which files they were.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avsc_core import __version__
from avsc_core.atomic import atomic_write
from avsc_core.bundle import Bundle, export_key, load_bundle, record_export
from avsc_core.bundle.manifest import sha256
from avsc_core.errors import AvscError, UsageError, first_line
from avsc_core.export.formats import SUFFIX, check_supported, needs_calibration
from avsc_core.export.quantize import CALIBRATION_FILES, calibration_inputs, quantize_onnx
from avsc_core.inference.runtime import (
    OPENVINO_PRECISIONS,
    engine_for,
    open_network,
    openvino_precision,
)
from avsc_core.progress import Cancelled, Progress, ProgressCallback

FP32_TOLERANCE = 1e-3
EXPORTS_DIR = "exports"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote: the manifest key, its entry, and the largest
    probability difference from Keras over all networks on the check inputs."""

    key: str
    entry: dict[str, Any]
    max_abs_diff: float


def _check_inputs(shape: tuple[int, ...], visual: bool, seed: int) -> np.ndarray:
    """Inputs in the value range the network sees: frames in [0, 255], log spectrograms
    and embeddings roughly unit-scaled."""
    rng = np.random.default_rng(seed)
    if visual:
        return rng.integers(0, 256, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def _compare(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: float(np.max(np.abs(expected[k] - got[k]))) for k in expected}


def _convert(format: str, precision: str, saved_model: Path, gelu_op: bool = True) -> bytes:
    from avsc_core.export.convert import to_onnx, to_tflite

    try:
        # An ONNX int8 graph starts as the fp32 one (quantised afterwards, with data).
        return (to_tflite(saved_model, precision) if format == "tflite"
                else to_onnx(saved_model, gelu_op=gelu_op))
    except AvscError:
        raise
    except Exception as exc:  # the converters raise many types; the message is what matters
        raise AvscError(f"{format} conversion failed: {first_line(exc)}") from exc


def export_model(
    model: str | Path | Bundle,
    format: str = "tflite",
    precision: str = "fp32",
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    calibration: Sequence[str | Path] | None = None,
    calibration_files: int = CALIBRATION_FILES,
) -> ExportResult:
    """Write an optimised copy of every network of ``model`` into the bundle.

    Parameters
    ----------
    model : str, Path or Bundle
        A two-phase model bundle.
    format : {"tflite", "onnx"}
    precision : {"fp32", "bf16", "int8"}
        ``"bf16"`` is for ONNX only: the fp32 graph, which OpenVINO computes in bf16 where
        the CPU does so natively (TFLite's is refused with the reason, see
        :mod:`avsc_core.export.formats`).
    progress : callable, optional
        ``Progress("calibrate", done, total, {"file": path})`` per calibration file, then
        ``Progress("export", done, total, {"network": name})`` per network.
    cancel : callable, optional
        Polled between files and networks; the bundle is left unchanged when it stops.
    calibration : sequence of path, optional
        Media files for an ONNX int8 export's ranges (required there, unused otherwise).
    calibration_files : int
        How many of ``calibration`` to decode, spread over the sorted list.

    Raises
    ------
    AvscError
        Unsupported format or precision, a model that cannot be loaded, missing or
        undecodable calibration files, a failed conversion, or a network computed in
        fp32 that does not reproduce Keras's answers.
    """
    check_supported(format, precision)
    if needs_calibration(format, precision) and not calibration:
        raise UsageError(
            f"--format {format} --precision {precision} is calibrated on clips like those "
            f"the model will label: give them with --calibration FILE_OR_FOLDER (up to "
            f"{calibration_files} are decoded)")
    bundle = model if isinstance(model, Bundle) else load_bundle(model)
    samples = None
    if needs_calibration(format, precision):
        samples = calibration_inputs(bundle, calibration or [], calibration_files,
                                     progress, cancel)
    key = export_key(format, precision)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%f")
    final = bundle.root / EXPORTS_DIR / f"{key}-{stamp}"
    partial = final.with_name(f".{final.name}.partial")
    remove_leftovers(bundle)
    partial.mkdir(parents=True)
    (partial / OWNER).write_text(str(os.getpid()))
    networks = [("backbones", n) for n in bundle.backbone_names]
    networks += [("heads", h) for h in bundle.head_names]
    entry: dict[str, Any] = {
        "format": format,
        "precision": precision,
        "avsc_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "backbones": {},
        "heads": {},
    }
    if samples is not None:
        entry["calibration"] = samples.record()
    worst = 0.0
    # The fp32 networks that are computed in fp32 (heads always) must match Keras; an
    # int8 export's others run in OpenVINO's bf16 where the CPU has it.
    engine = engine_for(format, precision)
    strict = precision == "fp32" or not (engine == "openvino" and openvino_precision() == "bf16")
    try:
        for done, (group, name) in enumerate(networks):
            if cancel and cancel():
                raise Cancelled()
            if progress:
                progress(Progress("export", done, len(networks), {"network": name}))
            # Calibrated exports quantise only some backbones (the others stay fp32).
            quantised = samples.inputs.get(name) if samples and group == "backbones" else None
            network = _export_one(
                bundle, group, name, format,
                "fp32" if samples and quantised is None else precision, partial, quantised,
                engine=engine,
                free_batch=format == "onnx" and precision in OPENVINO_PRECISIONS,
                gelu_op=precision != "bf16", strict=strict or group == "heads")
            entry[group][name] = network
            worst = max(worst, network["check"]["max_abs_diff"]["probs"])
        if progress:
            progress(Progress("export", len(networks), len(networks), {}))
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    for group in ("backbones", "heads"):
        for network in entry[group].values():
            network["file"] = (final / network["file"]).relative_to(bundle.root).as_posix()
    previous = bundle.exports.get(key)
    record_export(bundle.root, key, entry)
    (final / OWNER).unlink()
    if previous:
        _remove_old(bundle.root, previous, final)
    return ExportResult(key, entry, worst)


# An export folder holds this file, with the writing process's id, until the manifest
# records it: a folder whose writer is gone (killed mid-export) is a leftover.
OWNER = ".owner"


def _alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False  # no such process, or an unreadable file
    return True


def remove_leftovers(bundle: Bundle) -> list[Path]:
    """Delete export folders that a killed ``avsc export`` left behind; return them.

    A folder is a leftover when its writer's process is gone and the manifest does not
    record it: a ``.partial`` folder, or one renamed just before the manifest was written.
    Exports still being written by another process are kept.
    """
    folder = bundle.root / EXPORTS_DIR
    if not folder.is_dir():
        return []
    recorded = {
        (bundle.root / e["file"]).parent
        for export in bundle.exports.values()
        for group in ("backbones", "heads")
        for e in export.get(group, {}).values()
    }
    removed = []
    for path in folder.iterdir():
        if not path.is_dir() or path in recorded:
            continue
        owner = path / OWNER
        if owner.exists() and _alive(owner):
            continue
        if not owner.exists() and time.time() - path.stat().st_mtime < 60:
            continue  # just made by a writer that has not written its owner file yet
        if owner.exists() or path.name.endswith(".partial"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@dataclass(frozen=True)
class _Network:
    """One network to export: how to write its graph and how to check the result."""

    build: Callable[..., dict[str, str]]  # graph.backbone_graph or graph.head_graph
    batch: int
    precision: str
    reference: Callable[[Any], dict[str, np.ndarray]]  # Keras, same interface as the runtime
    example: Any  # check inputs: an array (backbones) or a dict of arrays (heads)


def _network(bundle: Bundle, group: str, name: str, precision: str) -> _Network:
    from avsc_core.export.graph import backbone_graph, head_graph
    from avsc_core.inference.backbones import OUTPUTS, backbone_runner

    if group == "heads":
        head = bundle.head(name)
        example = {t.name: _check_inputs((4, *t.shape[1:]), False, seed=i)
                   for i, t in enumerate(head.inputs)}
        return _Network(head_graph, 1, "fp32",
                        lambda x: {"probs": np.asarray(head(x), np.float32)}, example)
    model = bundle.backbone(name)
    visual = bundle.backbone_entry(name).get("modality") == "visual"
    batch = bundle.media.frames_per_segment if visual else 1
    outputs = backbone_runner(model).model
    return _Network(
        backbone_graph, batch, precision,
        lambda x: dict(zip(OUTPUTS, (np.asarray(o, np.float32) for o in outputs(x)))),
        _check_inputs((batch, *model.inputs[0].shape[1:]), visual, seed=0),
    )


def _export_one(bundle: Bundle, group: str, name: str, format: str, precision: str,
                folder: Path, samples: Sequence[np.ndarray] | None = None,
                engine: str | None = None, free_batch: bool = False,
                gelu_op: bool = True, strict: bool = True) -> dict[str, Any]:
    """Write, then check against Keras, one network; ``engine`` is the one that will run
    it (an export's fp32 networks run in the engine of the export's precision),
    ``free_batch`` writes a graph that takes any batch, ``gelu_op`` an ONNX graph's
    GELUs as one operation (:func:`~avsc_core.export.convert.to_onnx`), and ``strict``
    refuses an fp32 network further than :data:`FP32_TOLERANCE` from Keras (see the
    module's text)."""
    keras_model = bundle.head(name) if group == "heads" else bundle.backbone(name)
    network = _network(bundle, group, name, precision)
    path = folder / f"{'head-' if group == 'heads' else ''}{name}{SUFFIX[format]}"
    # The graphs OpenVINO runs take any batch: it fixes one when it loads a graph, for a
    # lane's share of the frames as well as for the exported batch (with a fixed one, the
    # converter writes the batch into the reshapes of ConvNeXt's Dense layers, which then
    # take no other).
    # OpenVINO's int8 1x1 convolutions beat its int8 matrix products (graph's module text).
    options = ({"pointwise_as_conv": True}
               if group == "backbones" and format == "onnx" and network.precision == "int8"
               else {})
    with tempfile.TemporaryDirectory(prefix="avsc-export-") as tmp:
        inputs = network.build(keras_model, None if free_batch else network.batch,
                               Path(tmp) / "saved_model", **options)
        data = _convert(format, network.precision, Path(tmp) / "saved_model", gelu_op)
    if samples is not None and network.precision == "int8":
        data = quantize_onnx(data, inputs, samples)
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    exported = open_network(format, path, {"inputs": inputs, "batch": network.batch},
                            engine=engine, exact=group == "heads")
    diff = _compare(network.reference(network.example), exported(network.example))
    if strict and network.precision == "fp32" and diff["probs"] > FP32_TOLERANCE:
        raise AvscError(
            f"{name}: the {format} copy differs from the Keras model by {diff['probs']:.2g} "
            f"in probability (more than {FP32_TOLERANCE}); not exported"
        )
    return {
        "file": path.name,  # made relative to the bundle once the folder has its final name
        "sha256": sha256(path),
        "inputs": inputs,
        "batch": network.batch,
        "precision": network.precision,
        "check": {"inputs": "synthetic", "max_abs_diff": diff},
    }


def _remove_old(root: Path, previous: dict[str, Any], keep: Path) -> None:
    folders = {
        (root / e["file"]).parent
        for group in ("backbones", "heads")
        for e in previous.get(group, {}).values()
    }
    for folder in folders:
        if folder != keep and folder.parent == root / EXPORTS_DIR:
            shutil.rmtree(folder, ignore_errors=True)
