"""Phase II: the backbones frozen, fusion heads trained on their embeddings.

Embeddings of every segment are computed once with the trained backbones (type 1: the
FC(1024) outputs, type 2: the FC(10) outputs; visual ones averaged over a segment's
frames) and kept in ``training/embeddings.npz``. Three heads are trained on them, with
mixup in the training step (:mod:`avsc_core.train.trainer`), the preset's schedule and
early stopping, in float32: ``audio`` (the audio backbones only), ``visual`` and
``fused`` (all five), so per-branch and fused answers all come from trained heads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from avsc_core.atomic import atomic_write
from avsc_core.backbones import FRAMES, FUSED, MODALITIES, modality_of
from avsc_core.features.prepare import PreparedClip
from avsc_core.features.store import open_entry
from avsc_core.inference.backbones import backbone_runner, run_audio_backbone, run_visual_backbone
from avsc_core.models import build_fusion_head
from avsc_core.progress import Cancelled, Progress, ProgressCallback
from avsc_core.train.pipeline import Shard, array_dataset
from avsc_core.train.stage import RunContext, Stage
from avsc_core.train.state import EMBEDDINGS_STEP, phase2_step
from avsc_core.train.trainer import compile_model, learning_rate, training_model


def head_inputs(head: str, backbones: Sequence[str]) -> list[str]:
    """The backbones a head fuses: one modality's, or all for ``fused``.

    A model with backbones of one modality only has no ``fused`` head (an empty list):
    its single-branch head already answers for it.
    """
    if head == FUSED:
        modalities = {modality_of(b) for b in backbones}
        return list(backbones) if modalities == set(MODALITIES) else []
    return [b for b in backbones if modality_of(b) == head]


@dataclass
class Embeddings:
    """Per-segment embeddings of every prepared clip.

    ``clip_index[r]`` is the clip of row ``r``; ``values[name][kind]`` is ``(rows, d)``
    with NaN rows where the clip lacks that backbone's modality.
    """

    clip_index: np.ndarray
    values: dict[str, dict[int, np.ndarray]]

    def available(self, names: Sequence[str]) -> np.ndarray:
        mask = np.ones(len(self.clip_index), bool)
        for name in names:
            mask &= ~np.isnan(self.values[name][1][:, 0])
        return mask

    def clip_rows(self, clips: Sequence[int]) -> dict[int, np.ndarray]:
        """Each of ``clips``' rows (a boolean mask), computed once for all who read them."""
        return {i: self.clip_index == i for i in clips}

    def save(self, path: Path) -> None:
        arrays = {"clip_index": self.clip_index}
        for name, kinds in self.values.items():
            for kind, value in kinds.items():
                arrays[f"{name}/{kind}"] = value
        with atomic_write(path, "wb") as handle:
            np.savez(handle, **arrays)

    def backbones(self) -> list[str]:
        """Backbones with embeddings for at least one clip."""
        return [name for name, kinds in self.values.items() if kinds]

    @classmethod
    def load(cls, path: Path) -> Embeddings:
        with np.load(path, allow_pickle=False) as data:
            values: dict[str, dict[int, np.ndarray]] = {}
            for key in data.files:
                if key != "clip_index":
                    name, kind = key.split("/")
                    values.setdefault(name, {})[int(kind)] = data[key]
            return cls(data["clip_index"], values)


def compute_embeddings(
    backbones: Mapping[str, tuple[Path, str]],
    clips: Sequence[PreparedClip],
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Embeddings:
    """Run each frozen backbone over every segment of ``clips``.

    ``backbones`` maps a backbone's name to its ``.keras`` file and the feature it takes
    (``"mel"``, ``"gam"``, ``"cqt"`` or ``"frames"``: its registry entry's, as the run
    resolved it, or its bundle's).
    """
    clip_index = np.concatenate([np.full(c.segments, i) for i, c in enumerate(clips)])
    starts = np.concatenate([[0], np.cumsum([c.segments for c in clips])])
    values: dict[str, dict[int, np.ndarray]] = {}
    total = len(backbones) * len(clips)
    done = 0
    for name, (path, feature) in backbones.items():
        runner = backbone_runner(keras.saving.load_model(path, safe_mode=True))
        rows: dict[int, np.ndarray] = {}
        for i, clip in enumerate(clips):
            if cancel and cancel():
                raise Cancelled()
            source = clip.frames if feature == FRAMES else clip.features.get(feature)
            if source is not None:
                data = open_entry(source)[: clip.segments]
                out = (
                    run_visual_backbone(runner, data)
                    if feature == FRAMES
                    else run_audio_backbone(runner, data)
                )
                for kind, key in ((1, "emb1"), (2, "emb2")):
                    if kind not in rows:
                        rows[kind] = np.full(
                            (len(clip_index), out[key].shape[1]), np.nan, np.float32
                        )
                    rows[kind][starts[i] : starts[i + 1]] = out[key]
            done += 1
            if progress:
                progress(Progress(EMBEDDINGS_STEP, done, total, {"backbone": name}))
        values[name] = rows
    return Embeddings(clip_index, values)


def train_head(
    context: RunContext,
    head: str,
    inputs: Sequence[str],
    embeddings: Embeddings,
    clips: Sequence[PreparedClip],
    build: Callable[[dict[str, int]], keras.Model] | None = None,
) -> Path | None:
    """Train (or resume) fusion head ``head`` on the embeddings of ``inputs``.

    ``clips`` are the clips of ``embeddings``' rows (their split chooses training or
    validation). ``build`` makes the head from the embedding sizes of ``inputs`` (``avsc
    adapt`` gives a joint model's classifier); a fusion head of ``config.fusion`` when
    omitted. Returns ``None`` when no training clip has all of them.
    """
    inputs = list(inputs)
    config, classes = context.config, context.classes
    stage = Stage(context, phase2_step(head), seed_key=f"head-{head}")
    if stage.finished:
        return stage.files.final

    kind = config.embedding_type
    lookup = {c: i for i, c in enumerate(classes)}
    labels = np.array([lookup[clips[i].clip.label] for i in embeddings.clip_index])
    splits = np.array([clips[i].clip.split for i in embeddings.clip_index])
    usable = embeddings.available(inputs)

    def subset(split: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        mask = usable & (splits == split)
        return {n: embeddings.values[n][kind][mask] for n in inputs}, labels[mask]

    x_train, y_train = subset("train")
    x_val, y_val = subset("val")
    if not len(y_train):
        return None

    def build_head(seed: int, total_steps: int) -> tuple[keras.Model, keras.Model]:
        dims = {n: embeddings.values[n][kind].shape[1] for n in inputs}
        net = (build(dims) if build is not None
               else build_fusion_head(config.fusion, dims, inputs, len(classes)))
        model = training_model(net, None, config.mixup_alpha, seed)
        rate = learning_rate(config.fusion_lr, config.lr_schedule, config.warmup_fraction,
                             total_steps)
        compile_model(model, keras.optimizers.Adam(rate))
        return model, net

    def datasets(batch: int, seed: int, epochs_done: int, shard: Shard | None):
        # Arrays shuffle by their seed: a resumed run's next epoch draws another order.
        train_ds = array_dataset(x_train, y_train, len(classes), batch, True, seed + epochs_done,
                                 shard)
        val_ds = (array_dataset(x_val, y_val, len(classes), batch, False, seed)
                  if len(y_val) else None)
        return train_ds, val_ds

    # No precision given: a head has a few thousand parameters, nothing for float16 to
    # speed up, so it trains in float32.
    stage.fit(examples=len(y_train), epochs=config.phase2_epochs, build=build_head,
              datasets=datasets)
    return stage.files.final
