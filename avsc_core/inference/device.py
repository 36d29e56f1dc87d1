"""Where the networks run: the CPU at hand (what it can do) and whether a GPU can be used.

Nothing here imports TensorFlow unless a GPU is visible and TensorFlow is the only
runtime that could use it: looking for a GPU costs a CPU-only machine nothing.

``AVSC_DEVICE=cpu`` keeps every network on the CPU whatever is installed;
``AVSC_DEVICE=gpu`` makes a missing GPU an error instead of a fall-back.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from avsc_core.errors import AvscError

DEVICE_ENV = "AVSC_DEVICE"
DEVICES = ("auto", "cpu", "gpu")

# The /proc/cpuinfo flags that decide how fast the networks and the features run.
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                "amx_bf16", "amx_int8", "asimd", "sve", "sve2")


@dataclass(frozen=True)
class CpuInfo:
    """The CPU model, the cores this process may use, and its vector extensions."""

    model: str
    cores: int
    flags: tuple[str, ...]

    def line(self) -> str:
        """``CPU: <model>, <n> cores; vector extensions: ...``."""
        return (f"CPU: {self.model}, {self.cores} cores; vector extensions: "
                f"{' '.join(self.flags) or 'none found'}")


def usable_cores() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """What /proc/cpuinfo says (``unknown`` and no flags where there is none)."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "CPU part") and model == "unknown":
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return CpuInfo(model, usable_cores(), tuple(f for f in VECTOR_FLAGS if f in flags))


def requested_device(device: str = "auto") -> str:
    """``device``, or the ``AVSC_DEVICE`` environment variable when ``device`` is "auto"."""
    if device == "auto":
        device = os.environ.get(DEVICE_ENV, "auto").strip().lower() or "auto"
    if device not in DEVICES:
        raise AvscError(f"unknown device {device!r} ({DEVICE_ENV}); use one of "
                        f"{', '.join(DEVICES)}")
    return device


def gpu_visible() -> bool:
    """Whether an NVIDIA GPU is visible to this process (device files or the driver's list),
    without loading any GPU library."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    return any(Path("/dev").glob("nvidia[0-9]*"))


def onnx_providers() -> tuple[str, ...]:
    """ONNX Runtime's execution providers in this installation (none without it)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return ()
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


def onnx_cuda() -> bool:
    """Whether ONNX Runtime can run on a GPU here (``onnxruntime-gpu`` and a visible GPU)."""
    return "CUDAExecutionProvider" in onnx_providers() and gpu_visible()


@functools.lru_cache(maxsize=1)
def tensorflow_gpus() -> tuple[str, ...]:
    """TensorFlow's GPUs; TensorFlow is imported only when a GPU is visible at all."""
    if not gpu_visible():
        return ()
    import tensorflow as tf

    return tuple(d.name for d in tf.config.list_physical_devices("GPU"))
