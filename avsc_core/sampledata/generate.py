"""Generating the synthetic dataset: one mp4 per clip in the ``folders`` layout.

Defaults (4 classes x 16 clips x 10 s = 64 clips, about 11 minutes of media) are sized for
``make demo``, which trains five tiny backbones and a fusion head on 2 CPU cores in a few
minutes:

- 4 classes is the smallest set with both kinds of confusion (see
  :mod:`avsc_core.sampledata.scenes`), so the demo shows fusion beating both branches.
- 16 clips per class leaves, after the default 15 % + 15 % validation and test split,
  about 11 training clips per class (220 frames and 11 spectrogram segments each), which
  a small CNN learns these sounds and looks from, and 2 to 3 test clips per class.
- 10 s matches one analysis segment of the feature pipeline (TAU clips are 10 s).

A 10-s clip takes about half a second of one CPU core to synthesise and encode (the
defaults about 30 s): 320x240 video at 10 fps (frames are resized to 224x224 and sampled
at 2 fps downstream, so more would only cost time), 48 kHz stereo AAC at 128 kbit/s.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsc_core.errors import AvscError
from avsc_core.orphans import exit_with_parent
from avsc_core.progress import Progress, ProgressCallback
from avsc_core.sampledata.encode import write_mp4
from avsc_core.sampledata.looks import render
from avsc_core.sampledata.scenes import CLASS_ORDER, LOOKS, SCENES, SOUNDS
from avsc_core.sampledata.sounds import synthesize

DEFAULT_CLASSES = 4
DEFAULT_PER_CLASS = 16
DEFAULT_SECONDS = 10.0
MAX_SECONDS = 600.0
MIN_SECONDS = 0.5


@dataclass(frozen=True)
class ClipFormat:
    """How clips are encoded.

    Parameters
    ----------
    width, height : int
        Video size in pixels (even, for yuv420p).
    fps : int
        Video frame rate.
    sample_rate : int
        Audio rate in Hz.
    """

    width: int = 320
    height: int = 240
    fps: int = 10
    sample_rate: int = 48000

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2 or self.width < 16 or self.height < 16:
            raise ValueError(
                f"video size must be even and at least 16, got {self.width}x{self.height}"
            )
        if self.fps < 1:
            raise ValueError(f"fps must be at least 1, got {self.fps}")


def generate_sample_dataset(
    out: str | Path,
    classes: int | Sequence[str] = DEFAULT_CLASSES,
    per_class: int = DEFAULT_PER_CLASS,
    seconds: float = DEFAULT_SECONDS,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    clip_format: ClipFormat = ClipFormat(),
    jobs: int = 1,
) -> list[Path]:
    """Write a synthetic audio-visual scene dataset to ``out/<class>/<class>-NNN.mp4``.

    Parameters
    ----------
    out : str or Path
        Dataset folder; created if missing. Clips already there under the same names are
        replaced, other files are left alone.
    classes : int or sequence of str
        How many classes, taken in :data:`~avsc_core.sampledata.scenes.CLASS_ORDER` (2..10),
        or their names.
    per_class : int
        Clips per class.
    seconds : float
        Length of every clip.
    seed : int
        Non-negative seed. A clip depends only on the seed, its class and its index, so the
        same seed gives the same clips whatever ``classes`` and ``per_class`` are.
    progress : callable, optional
        Called with a :class:`~avsc_core.progress.Progress` (stage ``"sample-data"``) before
        the first clip and after each one; ``info`` names the file just written.
    clip_format : ClipFormat
        Video size and rates.
    jobs : int
        Worker processes encoding clips in parallel (the clips do not depend on it).

    Returns
    -------
    list of Path
        The written clips, class by class.

    Raises
    ------
    AvscError
        For an invalid class count or name, clip count, length or seed, or when ``out``
        is an existing file.
    """
    names = _class_names(classes)
    if per_class < 1:
        raise AvscError(f"clips per class must be at least 1, got {per_class}")
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise AvscError(
            f"clip length must be between {MIN_SECONDS} and {MAX_SECONDS} s, got {seconds}"
        )
    if seed < 0:
        raise AvscError(f"seed must be non-negative, got {seed}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AvscError(f"{out}: exists and is not a folder")

    digits = max(3, len(str(per_class - 1)))
    tasks = [
        (
            out / name / f"{name}-{clip:0{digits}d}.mp4",
            name,
            seconds,
            _clip_seed(seed, name, clip),
            clip_format,
        )
        for name in names
        for clip in range(per_class)
    ]
    done = 0
    if progress:
        progress(Progress("sample-data", 0, len(tasks)))

    def report(path: Path) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(Progress("sample-data", done, len(tasks), {"file": str(path)}))

    if jobs <= 1:
        for task in tasks:
            write_clip(*task)
            report(task[0])
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
                jobs, mp_context=context, initializer=exit_with_parent) as pool:
            futures = {pool.submit(write_clip, *task): task[0] for task in tasks}
            for future in concurrent.futures.as_completed(futures):
                future.result()
                report(futures[future])
    return [task[0] for task in tasks]


def write_clip(
    path: str | Path,
    class_name: str,
    seconds: float,
    seed: np.random.SeedSequence | int,
    clip_format: ClipFormat = ClipFormat(),
) -> None:
    """Synthesise one clip of ``class_name`` and write it atomically to ``path``."""
    scene = SCENES[class_name]
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    sound_seed, look_seed = root.spawn(2)
    # Separate streams for sound and look: a class's sound then depends only on its sound
    # spec and seed, whatever its look consumes, and vice versa.
    audio = synthesize(
        SOUNDS[scene.sound], seconds, clip_format.sample_rate, np.random.default_rng(sound_seed)
    )
    frames = render(
        LOOKS[scene.look],
        seconds,
        clip_format.fps,
        clip_format.width,
        clip_format.height,
        np.random.default_rng(look_seed),
    )
    write_mp4(
        path,
        audio,
        clip_format.sample_rate,
        frames,
        clip_format.fps,
        clip_format.width,
        clip_format.height,
    )


def _class_names(classes: int | Sequence[str]) -> list[str]:
    if isinstance(classes, int):
        if not 2 <= classes <= len(CLASS_ORDER):
            raise AvscError(
                f"number of classes must be between 2 and {len(CLASS_ORDER)}, got {classes}"
            )
        return list(CLASS_ORDER[:classes])
    names = [classes] if isinstance(classes, str) else list(classes)
    unknown = [n for n in names if n not in SCENES]
    if unknown:
        raise AvscError(f"unknown class {unknown[0]!r}; choose from {', '.join(CLASS_ORDER)}")
    if len(set(names)) != len(names) or len(names) < 2:
        raise AvscError("give at least two different class names")
    return names


def _clip_seed(seed: int, name: str, clip: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, CLASS_ORDER.index(name), clip])
