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


# x86 generations by vendor, family and model number, for the CPU line of benchmarks:
# a virtual machine often shows only "AMD EPYC", and two generations with the same
# vector extensions can differ twofold in int8 speed (Zen 4 executes 512-bit
# instructions in two 256-bit halves, Zen 5 in one).
_AMD_GENERATIONS = {
    23: ((0x00, 0x2F, "Zen/Zen+"), (0x30, 0xFF, "Zen 2")),
    25: ((0x00, 0x0F, "Zen 3"), (0x10, 0x1F, "Zen 4"), (0x20, 0x5F, "Zen 3"),
         (0x60, 0x7F, "Zen 4"), (0xA0, 0xAF, "Zen 4")),
    26: ((0x00, 0xFF, "Zen 5"),),
}
_INTEL_GENERATIONS = {  # family 6
    0x3C: "Haswell", 0x3F: "Haswell", 0x45: "Haswell", 0x46: "Haswell",
    0x3D: "Broadwell", 0x47: "Broadwell", 0x4F: "Broadwell", 0x56: "Broadwell",
    0x4E: "Skylake", 0x5E: "Skylake", 0x55: "Skylake/Cascade Lake server",
    0x8E: "Kaby/Coffee Lake", 0x9E: "Kaby/Coffee Lake", 0x7E: "Ice Lake",
    0x6A: "Ice Lake server", 0x6C: "Ice Lake server", 0x8C: "Tiger Lake",
    0x8D: "Tiger Lake", 0x97: "Alder Lake", 0x9A: "Alder Lake", 0xB7: "Raptor Lake",
    0xBA: "Raptor Lake", 0xBF: "Raptor Lake", 0x8F: "Sapphire Rapids",
    0xCF: "Emerald Rapids", 0xAD: "Granite Rapids", 0xAE: "Granite Rapids",
    0xAA: "Meteor Lake", 0xC5: "Arrow Lake", 0xC6: "Arrow Lake", 0xBD: "Lunar Lake",
}


def x86_generation(vendor: str, family: int, model: int) -> str:
    """The microarchitecture of an x86 CPU (``"Zen 4"``...), ``""`` when not known."""
    if vendor == "AuthenticAMD":
        for low, high, name in _AMD_GENERATIONS.get(family, ()):
            if low <= model <= high:
                return name
    elif vendor == "GenuineIntel" and family == 6:
        return _INTEL_GENERATIONS.get(model, "")
    return ""


@dataclass(frozen=True)
class CpuInfo:
    """The CPU model, the cores this process may use, and its vector extensions.

    ``identity`` is what tells generations apart where the model name does not: x86's
    vendor, family and model numbers and the generation they mean (``""`` elsewhere).
    """

    model: str
    cores: int
    flags: tuple[str, ...]
    identity: str = ""

    def line(self) -> str:
        """``CPU: <model> (<identity>), <n> cores; vector extensions: ...``."""
        name = f"{self.model} ({self.identity})" if self.identity else self.model
        return (f"CPU: {name}, {self.cores} cores; vector extensions: "
                f"{' '.join(self.flags) or 'none found'}")


def usable_cores() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_cpuinfo(text: str, cores: int) -> CpuInfo:
    """:class:`CpuInfo` from the text of /proc/cpuinfo: the first value of each field.

    The whole text is read, not only the first processor's block: Arm kernels may write
    ``Model`` once, after the last processor."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key not in fields:
            fields[key] = value.strip()
    model = next((fields[k] for k in ("model name", "Model", "CPU part") if k in fields),
                 "unknown")
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    identity = ""
    vendor = fields.get("vendor_id", "")
    try:
        family, number = int(fields["cpu family"]), int(fields["model"])
    except (KeyError, ValueError):
        pass
    else:
        generation = x86_generation(vendor, family, number)
        identity = (f"{vendor} family {family} model {number}"
                    + (f": {generation}" if generation else ""))
    return CpuInfo(model, cores, tuple(f for f in VECTOR_FLAGS if f in flags), identity)


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """What /proc/cpuinfo says (``unknown`` and no flags where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        text = ""
    return parse_cpuinfo(text, usable_cores())


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
