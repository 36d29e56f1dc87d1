"""A classification result as the classify view presents it. No Qt here.

The input is the contract's JSON object (``avsc classify --json``, built by
:func:`avsc_core.inference.classify.classify_file`); this module only chooses what to show
and how to say it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avsc_core.backbones import AUDIO, FUSED, REGISTRY, VISUAL
from avsc_core.media import MediaInfo

# The branches in the order the views show them (fused first: the answer), with titles.
BRANCH_TITLES = {FUSED: "Fused", AUDIO: "Audio", VISUAL: "Visual"}
# The key of the bar standing for a modality none of whose backbones ran.
PLACEHOLDER = {AUDIO: "aud-*", VISUAL: "vis-*"}


@dataclass(frozen=True)
class Bars:
    """One bar chart: a probability per class, or why there is none.

    ``values`` is ``None`` when the branch or backbone did not run; ``note`` then says
    why (e.g. "no audio track"), so the view never draws a missing answer as zeros.
    """

    key: str
    title: str
    classes: tuple[str, ...]
    values: tuple[float, ...] | None
    note: str | None = None

    @property
    def top(self) -> tuple[str, float] | None:
        if self.values is None:
            return None
        best = int(np.argmax(self.values))
        return self.classes[best], self.values[best]


@dataclass(frozen=True)
class ResultView:
    """What the result panel shows for the whole clip or one segment."""

    label: str
    confidence: float
    scope: str
    verdict: str
    branches: tuple[Bars, ...]
    backbones: tuple[Bars, ...]
    warnings: tuple[str, ...]


def missing_note(result: dict[str, Any], branch: str) -> str:
    """Why ``branch`` gave no answer for this file."""
    if branch == AUDIO and not result.get("has_audio", True):
        return "no audio track"
    if branch == VISUAL and not result.get("has_video", True):
        return "no video stream"
    names = _backbone_names(result)
    if branch in PLACEHOLDER and not _has_modality(names, branch):
        return f"the model has no {branch} branch"
    return "did not run (see the warnings)"


def _has_modality(names: list[str], modality: str) -> bool:
    return any(REGISTRY[n].modality == modality for n in names if n in REGISTRY)


def _backbone_names(result: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for segment in result.get("segments", []):
        for name in segment.get("backbones", {}):
            if name not in names:
                names.append(name)
    return names


def _values(probs: dict[str, float] | None, classes: list[str]) -> tuple[float, ...] | None:
    if probs is None:
        return None
    return tuple(float(probs.get(c, 0.0)) for c in classes)


def _name(label: str) -> str:
    return label.replace("_", " ")


def _verdict(branches: dict[str, Bars]) -> str:
    fused, audio, visual = (branches[b].top for b in BRANCH_TITLES)
    if fused is None:
        return ""
    if audio is None and visual is None:
        return ""
    if audio is None:
        return f"From the pictures only ({branches['audio'].note})."
    if visual is None:
        return f"From the sound only ({branches['visual'].note})."
    said = (f"sound: {_name(audio[0])} ({audio[1]:.0%}), "
            f"pictures: {_name(visual[0])} ({visual[1]:.0%})")
    if audio[0] == visual[0]:
        return f"Sound and pictures agree - {said}."
    if fused[0] == visual[0]:
        return f"The pictures decided - {said}."
    if fused[0] == audio[0]:
        return f"The sound decided - {said}."
    return f"Sound and pictures disagree - {said}."


def result_view(result: dict[str, Any], segment: int | None = None) -> ResultView:
    """The panel for the whole clip (``segment=None``) or for segment ``segment``.

    The clip's backbone answers are the mean over segments, as the model aggregates its
    branches (:func:`avsc_core.inference.predictor.clip_probabilities`).
    """
    classes = list(result["classes"])
    segments = result.get("segments", [])
    if segment is None:
        source = result["clip"]["branches"]
        backbone_probs = {
            name: tuple(
                float(np.mean([s["backbones"][name].get(c, 0.0) for s in segments
                               if name in s.get("backbones", {})]))
                for c in classes
            )
            for name in _backbone_names(result)
        }
        scope = "whole file"
    else:
        chosen = segments[segment]
        source = chosen["branches"]
        backbone_probs = {
            name: _values(probs, classes) for name, probs in chosen.get("backbones", {}).items()
        }
        scope = f"segment {segment + 1} of {len(segments)} ({chosen['start']:.1f}-{chosen['end']:.1f} s)"
    branches = {
        b: Bars(
            b, BRANCH_TITLES[b], tuple(classes), _values(source.get(b), classes),
            None if source.get(b) is not None else missing_note(result, b),
        )
        for b in BRANCH_TITLES
    }
    backbones = [Bars(n, n, tuple(classes), v) for n, v in backbone_probs.items()]
    for branch, key in PLACEHOLDER.items():
        if branches[branch].values is None and not _has_modality([b.key for b in backbones],
                                                                  branch):
            note = branches[branch].note
            backbones.append(Bars(key, f"{branch} backbones", tuple(classes), None, note))
    top = branches[FUSED].top or ("-", 0.0)
    verdict = _verdict(branches)
    reasons = result["clip"].get("needs_review") if segment is None else None
    if reasons:
        # The same rule as the labels CSV's needs_review column (avsc_core.inference.review).
        verdict = f"{verdict} Check this answer: {', '.join(reasons)}.".strip()
    return ResultView(
        label=top[0],
        confidence=top[1],
        scope=scope,
        verdict=verdict,
        branches=tuple(branches[b] for b in BRANCH_TITLES),
        backbones=tuple(backbones),
        warnings=tuple(result.get("warnings", [])),
    )


@dataclass(frozen=True)
class Timeline:
    """Class probabilities of one branch over time (segment centres)."""

    branch: str
    classes: tuple[str, ...]
    starts: np.ndarray
    ends: np.ndarray
    probs: np.ndarray | None

    @property
    def centres(self) -> np.ndarray:
        return (self.starts + self.ends) / 2

    def main_classes(self, count: int = 5, floor: float = 0.05) -> list[str]:
        """Up to ``count`` classes that reach ``floor`` somewhere, most probable first."""
        if self.probs is None:
            return []
        peaks = self.probs.max(axis=0)
        order = [int(i) for i in np.argsort(-peaks) if peaks[i] >= floor]
        return [self.classes[i] for i in order[:count]]

    def segment_at(self, time: float) -> int:
        """The segment whose centre is nearest ``time``."""
        return int(np.argmin(np.abs(self.centres - time)))


def timeline(result: dict[str, Any], branch: str = FUSED) -> Timeline:
    """``branch``'s probabilities per segment (``probs`` is ``None`` when it did not run)."""
    classes = tuple(result["classes"])
    segments = result.get("segments", [])
    starts = np.array([s["start"] for s in segments], float)
    ends = np.array([s["end"] for s in segments], float)
    rows = [s["branches"].get(branch) for s in segments]
    probs = None
    if rows and all(r is not None for r in rows):
        probs = np.array([[r.get(c, 0.0) for c in classes] for r in rows], float)
    return Timeline(branch, classes, starts, ends, probs)


def facts(info: MediaInfo) -> list[tuple[str, str]]:
    """The file's facts as (name, value) rows."""
    rows = [("Duration", f"{info.duration:.2f} s")]
    try:
        size = info.path.stat().st_size
        rows.append(("File", f"{info.path.suffix.lstrip('.') or '?'}, {size / 1e6:.1f} MB"))
    except OSError:
        pass
    if info.has_video:
        video = f"{info.video_codec}, {info.width}x{info.height}"
        if info.fps:
            video += f", {info.fps:.3g} fps"
        if info.rotation:
            video += f", rotated {info.rotation} deg"
        rows.append(("Video", video))
    else:
        rows.append(("Video", "none (no video stream)"))
    if info.has_audio:
        channels = {1: "mono", 2: "stereo"}.get(info.audio_channels or 0,
                                               f"{info.audio_channels} channels")
        rows.append(("Audio", f"{info.audio_codec}, {info.sample_rate} Hz, {channels}"))
    else:
        rows.append(("Audio", "none (no audio track)"))
    return rows
