"""Running exported networks: TFLite (LiteRT) and ONNX Runtime, behind one interface.

An :class:`ExportedNetwork` is called with a batch of inputs and returns named outputs,
like the Keras runner of :mod:`avsc_core.inference.backbones`: a backbone gives ``emb1``,
``emb2`` and ``probs``, a head ``probs``. The graphs have a fixed batch (``batch_size``):
a call cuts its inputs into batches of that size and pads the last one.

Neither runtime imports TensorFlow: classifying with an export starts faster and uses
far less memory than with Keras. TFLite models run in LiteRT (``ai-edge-litert``) when it
is installed, else in TensorFlow's own (deprecated) ``tf.lite.Interpreter``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from avsc_core.errors import AvscError
from avsc_core.quiet import quiet_stderr


def default_threads() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    """

    def __init__(self, path: Path, inputs: Mapping[str, str], batch_size: int,
                 threads: int | None = None):
        self.path = Path(path)
        self.inputs = dict(inputs)
        self.batch_size = int(batch_size)
        self.threads = threads or default_threads()

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


def _tflite_interpreter(path: Path, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings

        with warnings.catch_warnings():
            # TensorFlow warns that its interpreter moves to ai-edge-litert; it still works.
            warnings.simplefilter("ignore")
            from tensorflow.lite.python.interpreter import Interpreter
    return Interpreter(model_path=str(path), num_threads=threads)


class TFLiteNetwork(ExportedNetwork):
    """A ``.tflite`` network, run by the XNNPACK delegate on ``threads`` cores."""

    def __init__(self, path: Path, inputs: Mapping[str, str], batch_size: int,
                 threads: int | None = None):
        super().__init__(path, inputs, batch_size, threads)
        try:
            with _quiet_stderr():
                self._interpreter = _tflite_interpreter(self.path, self.threads)
                self._interpreter.allocate_tensors()  # where the delegate is created
                self._runner = self._interpreter.get_signature_runner("serve")
        except (ValueError, RuntimeError) as exc:
            raise AvscError(f"{self.path}: cannot be loaded by TFLite ({exc})") from exc

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Copies: the runner's outputs are views of buffers the next call overwrites.
        return {k: np.array(v) for k, v in self._runner(**feed).items()}


class OnnxNetwork(ExportedNetwork):
    """A ``.onnx`` network, run by ONNX Runtime's CPU provider with all graph optimisations."""

    def __init__(self, path: Path, inputs: Mapping[str, str], batch_size: int,
                 threads: int | None = None):
        super().__init__(path, inputs, batch_size, threads)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise AvscError(f"{self.path}: onnxruntime is not installed") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise AvscError(f"{self.path}: cannot be loaded by ONNX Runtime ({exc})") from exc
        self._outputs = [o.name for o in self._session.get_outputs()]

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self._session.run(self._outputs, feed)))


NETWORKS = {"tflite": TFLiteNetwork, "onnx": OnnxNetwork}


def open_network(format: str, path: Path, entry: Mapping, threads: int | None = None
                 ) -> ExportedNetwork:
    """The runtime for one network of an export (``entry``: its manifest entry)."""
    return NETWORKS[format](path, entry["inputs"], entry["batch"], threads)
