"""The backbone registry: one entry per network a model embeds its inputs with.

Every backbone a bundle can hold has an entry here, the joint strategy's two encoders
included, saying what it learns from (its modality) and what it takes (its feature
kind). Everyone who needs to know asks the registry (training, fusion, the bundle) rather
than reading it from a name. The branch names every model answers with are spelled here
too. Plain data, no Keras: the settings and the app read it without loading TensorFlow;
the networks themselves are built by :mod:`avsc_core.models`.

==============  ========  ===================================  ============================
name            modality  feature                              strategy
==============  ========  ===================================  ============================
``aud-mel``     audio     mel                                  two-phase
``aud-gam``     audio     gam                                  two-phase
``aud-cqt``     audio     cqt                                  two-phase
``vis-inc``     visual    frames                               two-phase
``vis-conv``    visual    frames                               two-phase
``joint-aud``   audio     the run's ``joint_feature`` (a mel,  joint
                          gam or cqt spectrogram)
``joint-vis``   visual    frames                               joint
==============  ========  ===================================  ============================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

AUDIO = "audio"
VISUAL = "visual"
FUSED = "fused"
# What a backbone learns from, and so which single-modality branch it feeds.
MODALITIES = (AUDIO, VISUAL)
# The answers of every model, in this order: one per modality and the fused one (which
# falls back to the branch there is when a clip lacks the other modality).
BRANCHES = (AUDIO, VISUAL, FUSED)
# The feature kind of the visual backbones: video frames (the others are spectrograms of
# avsc_core.config.FEATURE_KINDS).
FRAMES = "frames"


@dataclass(frozen=True)
class BackboneEntry:
    """What one backbone is.

    Attributes
    ----------
    name : str
        Contract name, as bundles, journals and the command line spell it.
    modality : {"audio", "visual"}
    feature : str or None
        What it takes: a spectrogram kind of :data:`avsc_core.config.FEATURE_KINDS` or
        :data:`FRAMES`;
        ``None`` for the joint acoustic encoder, which takes the spectrogram its run
        chooses (``TrainConfig.joint_feature``).
    joint : bool
        One of the joint strategy's encoders (trained together, not in Phase I).
    """

    name: str
    modality: str
    feature: str | None
    joint: bool = False

    def feature_in(self, joint_feature: str) -> str:
        """The feature it takes in a run whose joint acoustic encoder takes ``joint_feature``."""
        return self.feature or joint_feature


_ENTRIES = (
    BackboneEntry("aud-mel", AUDIO, "mel"),
    BackboneEntry("aud-gam", AUDIO, "gam"),
    BackboneEntry("aud-cqt", AUDIO, "cqt"),
    BackboneEntry("vis-inc", VISUAL, FRAMES),
    BackboneEntry("vis-conv", VISUAL, FRAMES),
    BackboneEntry("joint-aud", AUDIO, None, joint=True),
    BackboneEntry("joint-vis", VISUAL, FRAMES, joint=True),
)
REGISTRY: dict[str, BackboneEntry] = {entry.name: entry for entry in _ENTRIES}
# The five backbones of two-phase training, which a user chooses from (--backbones).
TWO_PHASE_BACKBONES = tuple(e.name for e in _ENTRIES if not e.joint)
# The encoders of a joint model: acoustic, visual.
JOINT_AUDIO, JOINT_VISUAL = (e.name for e in _ENTRIES if e.joint)


def backbone_entry(name: str) -> BackboneEntry:
    """The registry entry of backbone ``name``.

    Raises
    ------
    ValueError
        For a name the registry does not know.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(REGISTRY)}") from None


def modality_of(name: str) -> str:
    """``"audio"`` or ``"visual"``: what backbone ``name`` learns from."""
    return backbone_entry(name).modality


def inputs_needed(features: Iterable[str]) -> tuple[tuple[str, ...], bool]:
    """What backbones taking ``features`` need decoded: the spectrogram kinds (in the order
    first named) and whether frames."""
    features = list(features)
    return tuple(dict.fromkeys(f for f in features if f != FRAMES)), FRAMES in features
