"""Running exported networks: TFLite (LiteRT), ONNX Runtime and OpenVINO, behind one interface.

An :class:`ExportedNetwork` is called with a batch of inputs and returns named outputs,
like the Keras runner of :mod:`avsc_core.inference.backbones`: a backbone gives ``emb1``,
``emb2`` and ``probs``, a head ``probs``. Each loaded network has a fixed batch
(``batch_size``): a call cuts its inputs into batches of that size and pads the last one.

No runtime imports TensorFlow: classifying with an export starts faster and uses
far less memory than with Keras. TFLite models run in LiteRT (``ai-edge-litert``) when it
is installed, else in TensorFlow's own (deprecated) ``tf.lite.Interpreter``.

Engines. A file's format does not say everything: an ONNX int8 export (calibrated QDQ
graph, see :mod:`avsc_core.export.quantize`) runs in OpenVINO when it is installed, whose
CPU plugin executes the quantised convolutions and matrix products in int8 kernels (ONNX
Runtime's CPU provider, the fallback, took 2.3x longer on ConvNeXtTiny); so does an ONNX
bf16 export (the fp32 graph, which OpenVINO computes in bf16 where the CPU does so
natively: :func:`openvino_precision`); every other ONNX export runs in ONNX Runtime.
:func:`engine_for` makes the choice.

Kernels. TFLite runs on the CPU only, in XNNPACK (AVX2, AVX-512 and VNNI kernels picked
at run time for the CPU at hand; the int8 exports' QD8 GEMMs use VNNI where the CPU has
it). XNNPACK's "latest features" option and a 1x1 convolution in place of ConvNeXt's
pointwise ``Dense`` made no difference (measured, AVX-512 VNNI machine); OpenVINO's int8
kernels do prefer the 1x1 convolution (:mod:`avsc_core.export.graph`), and overflow on an
x86 CPU without VNNI (:func:`int8_overflows`), where ``auto`` runs another export. ONNX Runtime
uses its CUDA provider when ``onnxruntime-gpu`` is installed and a GPU is visible
(``device="gpu"``), else its CPU provider. All three release the GIL while they compute, so
networks of one file can run side by side in threads (see
:class:`avsc_core.inference.predictor.Predictor`); a network sharing the cores with
another is then given ``spin=False`` so that ONNX Runtime's idle threads do not busy-wait
on a core the other one needs. :func:`kernels_report` says what this machine has.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from avsc_core.errors import AvscError, first_line
from avsc_core.inference.device import usable_cores
from avsc_core.quiet import quiet_stderr

FORMATS = ("tflite", "onnx")
SUFFIX = {"tflite": ".tflite", "onnx": ".onnx"}

# ``Predictor(runtime="auto")`` takes the first of these the bundle has: fastest first,
# where OpenVINO is installed and the CPU computes bf16 natively (see auto_order).
AUTO_ORDER = ("onnx-int8", "onnx-bf16", "tflite-int8", "tflite-fp32", "onnx-fp32")
# The precisions OpenVINO runs (the others' ONNX exports run in ONNX Runtime).
OPENVINO_PRECISIONS = ("int8", "bf16")

ENGINES = ("tflite", "onnxruntime", "openvino")
ENGINE_TITLES = {"tflite": "XNNPACK", "onnxruntime": "ONNX Runtime CPU provider",
                 "openvino": "OpenVINO CPU plugin"}
# Engines whose graphs take another batch than the exported one (a Predictor's lanes split
# a visual network's frames between instances of it).
RESIZABLE = ("tflite", "openvino")


def openvino_available() -> bool:
    """Whether OpenVINO (``pip install openvino``, in the ``export`` extra) is installed."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def auto_order(exports: Collection[str] | None = None) -> tuple[str, ...]:
    """:data:`AUTO_ORDER` for this machine. Without native bf16, OpenVINO computes the
    bf16 export in fp32: no faster than TFLite's int8, so it comes after it. Without
    OpenVINO, ONNX Runtime runs the int8 export (written for OpenVINO) slower than the
    fp32 one (:mod:`avsc_core.export.quantize`), so it comes last, and the bf16 one as the
    fp32 graph it is. Give the bundle's ``exports`` to spare starting OpenVINO to ask
    about bf16 when there is no bf16 export."""
    order = list(AUTO_ORDER)
    if not openvino_available():
        order.remove("onnx-int8")
        order.append("onnx-int8")
        order.remove("onnx-bf16")
        order.insert(order.index("onnx-fp32"), "onnx-bf16")
    elif (exports is None or "onnx-bf16" in exports) and openvino_precision() != "bf16":
        order.remove("onnx-bf16")
        order.insert(order.index("tflite-int8") + 1, "onnx-bf16")
    return tuple(order)


def engine_for(format: str, precision: str, device: str = "cpu") -> str:
    """The engine (one of :data:`ENGINES`) that runs an export of ``format``/``precision``."""
    if format == "tflite":
        return "tflite"
    if (format == "onnx" and precision in OPENVINO_PRECISIONS and device == "cpu"
            and openvino_available()):
        return "openvino"
    return "onnxruntime"


def kernels_report() -> list[str]:
    """What runs the exported networks on this machine, one line per runtime."""
    import importlib.metadata
    import importlib.util

    from avsc_core.inference.device import cpu_info, gpu_visible, onnx_providers

    info = cpu_info()
    lines = [info.line()]
    flags = set(info.flags)
    best = ("AVX-512 VNNI" if "avx512_vnni" in flags else "AVX-VNNI" if "avx_vnni" in flags
            else "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE/NEON")
    for package in ("ai-edge-litert", "tensorflow"):
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
        lines.append(f"TFLite: {package} {version}, XNNPACK delegate on the CPU "
                     f"(best int8 kernels for this CPU: {best})")
        break
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        lines.append(f"ONNX Runtime {onnxruntime.__version__}: providers "
                     f"{', '.join(onnx_providers())}")
    if openvino_available():
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            lines.append(f"OpenVINO {importlib.metadata.version('openvino')}: "
                         f"{engine_title('openvino')} (runs the ONNX int8 and bf16 exports)")
    lines.append(f"GPU visible: {'yes' if gpu_visible() else 'no'}")
    return lines


class ExportedNetwork:
    """One exported network.

    Parameters
    ----------
    path : Path
        The ``.tflite`` or ``.onnx`` file.
    inputs : dict
        Input name the caller uses (``"frames"``, ``"aud-mel"``...) -> name in the graph.
    batch_size : int
        The batch the graph was exported with.
    threads : int, optional
        CPU threads for the runtime; all available cores by default.
    device : {"cpu", "gpu"}
        Where to run; only ONNX Runtime (with its CUDA provider) runs on a GPU.
    spin : bool
        Whether idle runtime threads may busy-wait for the next piece of work (faster
        alone, wasteful when another network shares the cores).

    Attributes
    ----------
    device : str
        Where it does run (``"cpu"`` when a GPU was asked for but could not be used).
    """

    device = "cpu"

    def __init__(self, path: Path, inputs: Mapping[str, str], batch_size: int,
                 threads: int | None = None, device: str = "cpu", spin: bool = True):
        self.path = Path(path)
        self.inputs = dict(inputs)
        self.batch_size = int(batch_size)
        self.threads = threads or usable_cores()
        self.spin = spin

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def __call__(self, x: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs for a batch: an array (single-input networks) or a dict by input name."""
        if not isinstance(x, Mapping):
            if len(self.inputs) != 1:
                raise ValueError(f"{self.path.name} takes inputs {list(self.inputs)}")
            x = {next(iter(self.inputs)): x}
        arrays = {self.inputs[k]: np.asarray(v, np.float32) for k, v in x.items()}
        n = len(next(iter(arrays.values())))
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, n, self.batch_size):
            chunk = {k: _pad(v[start : start + self.batch_size], self.batch_size)
                     for k, v in arrays.items()}
            for key, value in self._run(chunk).items():
                parts.setdefault(key, []).append(value[: min(self.batch_size, n - start)])
        return {k: np.concatenate(v).astype(np.float32, copy=False) for k, v in parts.items()}


def _pad(x: np.ndarray, size: int) -> np.ndarray:
    if len(x) == size:
        return np.ascontiguousarray(x)
    return np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), x.dtype)])


def _quiet_stderr():
    """Silence the C++ runtime's start-up lines (\"Created TensorFlow Lite XNNPACK
    delegate for CPU\"), which bypass Python's logging, unless TF logging is wanted."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") == "0":
        return contextlib.nullcontext()
    return quiet_stderr()


def _tflite_interpreter(path: Path, threads: int, delegate: bool = True):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        import warnings

        with warnings.catch_warnings():
            # TensorFlow warns that its interpreter moves to ai-edge-litert; it still works.
            warnings.simplefilter("ignore")
            from tensorflow.lite.python.interpreter import Interpreter, OpResolverType
    resolver = (OpResolverType.AUTO if delegate
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return Interpreter(model_path=str(path), num_threads=threads,
                       experimental_op_resolver_type=resolver)


class TFLiteNetwork(ExportedNetwork):
    """A ``.tflite`` network, run by the XNNPACK delegate on ``threads`` cores (CPU only).

    ``batch`` other than the exported ``batch_size`` resizes the graph's inputs, when
    the graph allows it (:func:`_check_batch_free`).
    """

    def __init__(self, path: Path, inputs: Mapping[str, str], batch_size: int,
                 threads: int | None = None, device: str = "cpu", spin: bool = True,
                 batch: int | None = None):
        super().__init__(path, inputs, batch_size, threads, "cpu", spin)
        try:
            with _quiet_stderr():
                self._interpreter = _tflite_interpreter(self.path, self.threads)
                if batch is not None and batch != self.batch_size:
                    self._resize(batch)
                self._interpreter.allocate_tensors()  # where the delegate is created
                self._runner = self._interpreter.get_signature_runner("serve")
        except (ValueError, RuntimeError) as exc:
            raise AvscError(f"{self.path}: cannot be loaded by TFLite ({exc})") from exc

    def _resize(self, batch: int) -> None:
        _check_batch_free(self.path, self.batch_size, batch)
        for detail in self._interpreter.get_input_details():
            self._interpreter.resize_tensor_input(detail["index"],
                                                  [batch, *detail["shape"][1:]])
        self.batch_size = batch

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Copies: the runner's outputs are views of buffers the next call overwrites.
        return {k: np.array(v) for k, v in self._runner(**feed).items()}


# Cached: the lanes of a Predictor open the same graph at the same batch, one each.
@functools.cache
def _check_batch_free(path: Path, exported: int, batch: int) -> None:
    """Raise ``ValueError`` (or TFLite's ``RuntimeError``) unless the graph in ``path``
    takes ``batch`` inputs as it took ``exported``: resized (without the delegate, so that
    TFLite infers every shape), each tensor that had the batch in front must have the new
    one there and every other one its old shape. A graph holding the batch anywhere else
    in a shape (a reshape of the whole batch) is refused. An operator that mixes the
    inputs of a batch without a shape showing it would not be; the backbones' graphs have
    none (inference-mode layers treat each frame on its own)."""
    interpreter = _tflite_interpreter(path, 1, delegate=False)
    before = {t["index"]: tuple(t["shape"]) for t in interpreter.get_tensor_details()}
    for detail in interpreter.get_input_details():
        interpreter.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
    interpreter.allocate_tensors()
    for t in interpreter.get_tensor_details():
        old = before.get(t["index"])
        if not old:
            continue
        want = (batch, *old[1:]) if old[0] == exported else old
        if tuple(t["shape"]) != want:
            raise ValueError(f"tensor {t['name']} has shape {tuple(t['shape'])} for a batch "
                             f"of {batch}, not {want}")


class OnnxNetwork(ExportedNetwork):
    """A ``.onnx`` network, run by ONNX Runtime with all graph optimisations: its CUDA
    provider with ``device="gpu"`` (when installed), else its CPU provider."""

    def __init__(self, path: Path, inputs: Mapping[str, str], batch_size: int,
                 threads: int | None = None, device: str = "cpu", spin: bool = True):
        super().__init__(path, inputs, batch_size, threads, device, spin)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise AvscError(f"{self.path}: onnxruntime is not installed") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device == "gpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise AvscError(f"{self.path}: cannot be loaded by ONNX Runtime ({exc})") from exc
        # ONNX Runtime falls back to the CPU when the CUDA provider cannot start.
        self.device = "gpu" if self._session.get_providers()[0] == "CUDAExecutionProvider" \
            else "cpu"
        self._outputs = [o.name for o in self._session.get_outputs()]

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self._session.run(self._outputs, feed)))


@functools.cache
def _openvino_core():
    import openvino

    return openvino.Core()


# oneDNN's instruction sets without int8 dot products (VNNI), as ONEDNN_MAX_CPU_ISA names
# them, and the /proc/cpuinfo flags of those dot products.
NO_VNNI_ISAS = frozenset({"SSE41", "AVX", "AVX2", "AVX512_CORE"})
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def onednn_isa_cap() -> str:
    """The most oneDNN (OpenVINO's kernels) may use, as the user capped it
    (``ONEDNN_MAX_CPU_ISA``, or its older name ``DNNL_MAX_CPU_ISA``); ``""`` for none."""
    return (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
            or "").strip().upper()


def _cpu_flags() -> set[str]:
    """/proc/cpuinfo's vector flags; elsewhere (Windows, macOS) numpy's CPU detection's
    AVX-512 VNNI, the one of them it reports."""
    from avsc_core.inference.device import cpu_info

    flags = set(cpu_info().flags)
    if not flags:
        try:
            from numpy._core._multiarray_umath import __cpu_features__
        except ImportError:  # a numpy that moved it: no flags, as for an unknown CPU
            return set()
        flags = {"avx512_vnni"} if __cpu_features__.get("AVX512VNNI") else set()
    return flags


@functools.cache
def int8_overflows() -> bool:
    """Whether this CPU's int8 kernels overflow on the calibrated int8 exports' weights: an
    x86 CPU without VNNI multiplies uint8 activations by int8 weights in pairs summed into
    int16 (``vpmaddubsw``), which saturates. Measured with oneDNN limited to AVX2
    (``ONEDNN_MAX_CPU_ISA=AVX2``), on 60 real street frames: ConvNeXtTiny's ``emb2`` 18 %
    off fp32 instead of 1.7 % (InceptionV3 9 % instead of 3.5 %), and labels equal to
    fp32's on 111 of 122 clips instead of 122. Weights kept to 7 bits (ONNX Runtime's
    ``reduce_range``) do not overflow, but cost VNNI CPUs their accuracy (2.2 % off, 119
    of 122 labels; 118 without VNNI), so the export keeps 8 bits and such a CPU runs
    another export (:func:`~avsc_core.inference.predictor.choose_runtime`). A oneDNN
    capped below VNNI (:func:`onednn_isa_cap`) counts as such a CPU.
    """
    if platform.machine().lower() not in X86_MACHINES:
        return False
    cap, flags = onednn_isa_cap(), _cpu_flags()
    if cap in NO_VNNI_ISAS:
        return True
    if cap.startswith("AVX2_VNNI"):  # oneDNN keeps AVX-VNNI only, not AVX-512's
        return "avx_vnni" not in flags
    return not flags & VNNI_FLAGS


def overflows_here(export: Mapping) -> bool:
    """Whether ``export``'s int8 layers overflow on this CPU (:func:`int8_overflows`): a
    calibrated ONNX int8 export on an x86 CPU without VNNI. (TFLite's int8 is not
    affected: XNNPACK widens to int16 before multiplying.)"""
    return (export.get("format") == "onnx" and export.get("precision") == "int8"
            and int8_overflows())


# oneDNN's instruction sets without native bf16, as ONEDNN_MAX_CPU_ISA names them.
NO_BF16_ISAS = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                          "AVX512_CORE_VNNI"})


@functools.cache
def openvino_precision() -> str:
    """What OpenVINO computes the float layers of the exports it runs in (the bf16
    export's, and those an int8 export leaves unquantised): ``"bf16"`` where this CPU
    computes bf16 natively (AVX512_BF16 or AMX: OpenVINO lists ``BF16`` among its
    optimisation capabilities), else ``"f32"``. Their answers then depend a little on the
    CPU, as an int8 export's already do (``benchmarks/label.py --agree`` measures their
    labels against fp32).

    ``ONEDNN_MAX_CPU_ISA`` below bf16 (``AVX2``: what ``benchmarks/label.py``'s ``isa``
    runs as) also means ``"f32"``: OpenVINO still lists ``BF16`` then, but cannot build
    bf16 layers from the kernels left to it.
    """
    if onednn_isa_cap() in NO_BF16_ISAS:
        return "f32"
    try:
        capabilities = _openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except (ImportError, RuntimeError):
        return "f32"
    return "bf16" if "BF16" in capabilities else "f32"


def engine_title(engine: str) -> str:
    """How :class:`~avsc_core.inference.predictor.Predictor` names ``engine`` to a user."""
    if engine == "openvino":
        precision = {"f32": "fp32"}.get(openvino_precision(), openvino_precision())
        return f"{ENGINE_TITLES[engine]}, backbones' float layers in {precision}"
    return ENGINE_TITLES[engine]


class OpenVinoNetwork(ExportedNetwork):
    """A ``.onnx`` network run by OpenVINO's CPU plugin (the ONNX int8 and bf16 exports).

    ``batch`` other than the exported ``batch_size`` reshapes the graph, when every output
    then has that batch in front (graphs that reshape the whole batch are refused); a graph
    written with a free batch (every network of an ONNX int8 or bf16 export) is fixed to
    ``batch_size``.
    Outside the quantised layers it computes in :func:`openvino_precision`: bf16 where the
    CPU computes it natively, which in an int8 export is 9-11 % faster on the visual
    networks and twice as fast on the audio ones, for a tenth of the int8 layers' error
    (see :mod:`avsc_core.export.quantize`). ``exact`` keeps a network in fp32 (the fusion
    heads: a few thousand multiply-adds, whose logits lose most in bf16; in bf16 they
    tied a clip whose two best classes were 0.018 apart).
    """

    def __init__(self, path: Path, inputs: Mapping[str, str], batch_size: int,
                 threads: int | None = None, device: str = "cpu", spin: bool = True,
                 batch: int | None = None, exact: bool = False):
        super().__init__(path, inputs, batch_size, threads, "cpu", spin)
        precision = "f32" if exact else openvino_precision()
        try:
            core = _openvino_core()
        except ImportError as exc:
            raise AvscError(f"{self.path}: openvino is not installed") from exc
        except RuntimeError as exc:
            raise AvscError(f"{self.path}: OpenVINO cannot start ({first_line(exc)})") from exc
        try:
            model = core.read_model(str(self.path))
            # A graph that takes any batch is fixed to one: static shapes run faster.
            self._reshape(model, batch or self.batch_size)
            compiled = core.compile_model(model, "CPU", {
                "INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": 1,
                "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision,
                # Pinned threads of two lanes could land on the same core.
                "ENABLE_CPU_PINNING": False})
        except RuntimeError as exc:
            raise AvscError(f"{self.path}: cannot be loaded by OpenVINO ({first_line(exc)})"
                            ) from exc
        self._request = compiled.create_infer_request()
        self._outputs = [(port, _output_name(port)) for port in compiled.outputs]

    def _reshape(self, model, batch: int) -> None:
        shapes = {port.get_any_name(): port.get_partial_shape() for port in model.inputs}
        if all(shape.is_static and shape[0] == batch for shape in shapes.values()):
            return
        model.reshape({name: [batch, *list(shape)[1:]] for name, shape in shapes.items()})
        for port in model.outputs:
            shape = port.get_partial_shape()
            if shape.rank.get_length() == 0 or shape[0] != batch:
                raise AvscError(f"{self.path}: output {port.get_any_name()} has shape "
                                f"{shape} for a batch of {batch}")
        self.batch_size = batch

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # infer() releases the GIL while it computes; its results are views of the
        # request's buffers, which the next call overwrites.
        results = self._request.infer(feed)
        return {name: np.array(results[port]) for port, name in self._outputs}


def _output_name(port) -> str:
    """The port's name as the graph's writer gave it (``probs``...): OpenVINO may add
    aliases of merged tensors, and ``get_any_name`` could return one of those."""
    names = port.get_names()
    known = sorted(names & {"emb1", "emb2", "probs"})
    return known[0] if known else port.get_any_name()


NETWORKS = {"tflite": TFLiteNetwork, "onnxruntime": OnnxNetwork, "openvino": OpenVinoNetwork}


def open_network(format: str, path: Path, entry: Mapping, threads: int | None = None,
                 device: str = "cpu", spin: bool = True, batch: int | None = None,
                 engine: str | None = None, exact: bool = False) -> ExportedNetwork:
    """The runtime for one network of an export (``entry``: its manifest entry).

    ``engine`` defaults to :func:`engine_for` the entry's format and precision. ``batch``
    (TFLite and OpenVINO) resizes the graph to that many inputs per call; an
    :class:`AvscError` says when it cannot be. ``exact`` computes in fp32 where the engine
    would use bf16 (OpenVINO, see :class:`OpenVinoNetwork`).
    """
    engine = engine or engine_for(format, entry.get("precision", "fp32"), device)
    if batch is not None and batch != entry["batch"] and engine not in RESIZABLE:
        raise AvscError(f"{path}: a {format} graph in {engine} keeps the batch it was "
                        "exported with")
    options: dict[str, Any] = {} if batch is None or batch == entry["batch"] else {
        "batch": batch}
    if engine == "openvino":
        options["exact"] = exact  # the other engines compute an fp32 graph in fp32
    return NETWORKS[engine](path, entry["inputs"], entry["batch"], threads, device, spin,
                            **options)
