"""The ten synthetic scene classes: which sound and which look each one has.

The classes carry the TAU Urban Audio-Visual Scenes 2021 names, and some of them share a
sound or a look on purpose, so that the data tests *multimodal* learning: a model that
listens only cannot tell apart two classes that sound the same, a model that only looks
cannot tell apart two that look the same, and only a model that fuses both can get every
class right.

Pairing table, in :data:`CLASS_ORDER` order (``=`` marks a shared distribution, so the
pair is confused by that modality alone and separated only by the other):

====  ==================  ===========  ===========  ======================================
 #    class               sound        look         confused by
====  ==================  ===========  ===========  ======================================
 1    bus                 vehicle      bus          audio (= tram's sound)
 2    tram                vehicle      tram         audio (= bus's sound)
 3    airport             airport      hall         vision (= shopping_mall's look)
 4    shopping_mall       mall         hall         vision (= airport's look)
 5    street_pedestrian   crowd        pedestrian   audio (= public_square's sound)
 6    public_square       crowd        square       audio (= street_pedestrian's sound)
 7    metro               metro        underground  vision (= metro_station's look)
 8    metro_station       station      underground  vision (= metro's look)
 9    park                park         park         neither
10    street_traffic      traffic      traffic      neither
====  ==================  ===========  ===========  ======================================

The order puts an audio-confused pair first and a vision-confused pair second, so any
``--classes N`` with N >= 4 already has both kinds of confusion. With the first four
classes an audio-only model can reach at most 75 % (it must guess between bus and tram),
a vision-only model at most 75 % (airport or shopping mall), a fused one 100 %. All the
other distinctions are easy for either modality: every sound differs from every other in
its noise band and its events, every look in its palette, texture and motion.
"""

from __future__ import annotations

from dataclasses import dataclass

from avsc_core.sampledata.looks import LookSpec
from avsc_core.sampledata.sounds import EventTrack, NoiseBed, SoundSpec

CLASS_ORDER: tuple[str, ...] = (
    "bus",
    "tram",
    "airport",
    "shopping_mall",
    "street_pedestrian",
    "public_square",
    "metro",
    "metro_station",
    "park",
    "street_traffic",
)

SOUNDS: dict[str, SoundSpec] = {
    # Engine rumble and drone, rattles, a stop-request beep now and then.
    "vehicle": SoundSpec(
        bed=NoiseBed(centre_hz=110, width_oct=1.0, coherence=0.7, am_hz=0.15, am_depth=0.3),
        hum=(95.0, -4.0),
        events=(
            EventTrack("knock", 1.5, (900.0,), 0.06, 2.0, pan=(-0.8, 0.8)),
            EventTrack("tone", 0.25, (1500.0,), 0.18, 6.0, pan=(-0.9, -0.4), harmonics=2),
        ),
    ),
    # A large hall's murmur, rolling footsteps, and a falling two-tone announcement chime.
    "airport": SoundSpec(
        bed=NoiseBed(centre_hz=600, width_oct=1.3, coherence=0.3, am_hz=2.5, am_depth=0.2),
        events=(
            EventTrack("knock", 2.0, (1800.0,), 0.05, 0.0, pan=(-1.0, 1.0)),
            EventTrack("chime", 0.18, (784.0, 587.0), 0.35, 10.0, pan=(-0.1, 0.1), harmonics=3),
        ),
    ),
    # A brighter murmur and background music: notes of a pentatonic scale on a beat.
    "mall": SoundSpec(
        bed=NoiseBed(centre_hz=1400, width_oct=1.2, coherence=0.4),
        events=(
            EventTrack(
                "notes",
                3.0,
                (330.0, 370.0, 440.0, 494.0, 554.0),
                0.28,
                6.0,
                pan=(0.2, 0.6),
                regular=True,
                harmonics=4,
            ),
        ),
    ),
    # Chatter (syllable-rate modulation), footsteps, the odd rising voice.
    "crowd": SoundSpec(
        bed=NoiseBed(centre_hz=350, width_oct=0.9, coherence=0.2, am_hz=4.0, am_depth=0.6),
        events=(
            EventTrack("knock", 2.5, (400.0,), 0.08, 3.0, pan=(-0.9, 0.9)),
            EventTrack("chirp", 0.4, (600.0, 1200.0), 0.3, 4.0, pan=(-0.7, 0.7), harmonics=1),
        ),
    ),
    # Deep tunnel rumble, rail joints on a steady beat, wheel squeal.
    "metro": SoundSpec(
        bed=NoiseBed(centre_hz=60, width_oct=0.8, coherence=0.8, am_hz=0.1, am_depth=0.3),
        events=(
            EventTrack("knock", 1.8, (250.0,), 0.1, 8.0, pan=(-0.3, 0.3), regular=True),
            EventTrack("chirp", 0.3, (2600.0, 3600.0), 0.8, 2.0, pan=(-0.5, 0.5)),
        ),
    ),
    # A reverberant platform: broad murmur, a rising three-tone chime, a train passing by.
    "station": SoundSpec(
        bed=NoiseBed(centre_hz=280, width_oct=1.8, coherence=0.5, am_hz=0.08, am_depth=0.7),
        events=(
            EventTrack("chime", 0.2, (523.0, 659.0, 784.0), 0.3, 10.0, pan=(0.3, 0.8), harmonics=2),
            EventTrack("knock", 1.0, (1200.0,), 0.05, -2.0, pan=(-1.0, 1.0)),
        ),
    ),
    # Wind in leaves and birdsong.
    "park": SoundSpec(
        bed=NoiseBed(centre_hz=2500, width_oct=1.4, coherence=0.1, am_hz=0.2, am_depth=0.5),
        events=(EventTrack("chirp", 3.0, (3200.0, 5200.0), 0.09, 10.0, pan=(-1.0, 1.0)),),
    ),
    # Broadband road noise swelling with passing cars, horns.
    "traffic": SoundSpec(
        bed=NoiseBed(centre_hz=200, width_oct=1.6, coherence=0.6, am_hz=0.15, am_depth=0.6),
        events=(EventTrack("tone", 0.25, (415.0,), 0.45, 8.0, pan=(-0.8, 0.8), harmonics=5),),
    ),
}

LOOKS: dict[str, LookSpec] = {
    # Warm interior, slanted window pillars, scenery sliding left.
    "bus": LookSpec(
        top=(0.85, 0.65, 0.25),
        bottom=(0.55, 0.3, 0.1),
        ink=(0.3, 0.15, 0.05),
        texture="stripes",
        period_px=48,
        angle_deg=20,
        coverage=0.7,
        motion_deg=180,
        speed_px_s=40,
    ),
    # Cool teal interior, vertical poles, scenery sliding right.
    "tram": LookSpec(
        top=(0.3, 0.7, 0.75),
        bottom=(0.1, 0.35, 0.45),
        ink=(0.9, 0.95, 0.95),
        texture="stripes",
        period_px=40,
        angle_deg=0,
        coverage=0.6,
        motion_deg=0,
        speed_px_s=60,
    ),
    # Bright halls with a tiled floor, drifting slowly toward the camera.
    "hall": LookSpec(
        top=(0.92, 0.9, 0.85),
        bottom=(0.7, 0.65, 0.6),
        ink=(0.45, 0.42, 0.5),
        texture="checker",
        period_px=56,
        angle_deg=30,
        coverage=0.45,
        motion_deg=90,
        speed_px_s=12,
    ),
    # Grey-red street with people (blobs) walking sideways.
    "pedestrian": LookSpec(
        top=(0.6, 0.6, 0.65),
        bottom=(0.55, 0.25, 0.2),
        ink=(0.15, 0.15, 0.25),
        texture="blobs",
        period_px=50,
        angle_deg=0,
        coverage=0.8,
        motion_deg=0,
        speed_px_s=30,
    ),
    # Sunny stone square under a blue sky, many small people, slow diagonal drift.
    "square": LookSpec(
        top=(0.5, 0.7, 0.95),
        bottom=(0.85, 0.75, 0.5),
        ink=(0.35, 0.25, 0.15),
        texture="dots",
        period_px=36,
        angle_deg=0,
        coverage=0.8,
        motion_deg=45,
        speed_px_s=15,
    ),
    # Dark blue-grey underground, diagonal light streaks rushing by, flickering lights.
    "underground": LookSpec(
        top=(0.2, 0.22, 0.32),
        bottom=(0.08, 0.08, 0.12),
        ink=(0.85, 0.85, 0.6),
        texture="stripes",
        period_px=64,
        angle_deg=-45,
        coverage=0.5,
        motion_deg=180,
        speed_px_s=120,
        flicker_hz=1.3,
        flicker_depth=0.25,
    ),
    # Green foliage (band-limited noise) swaying slowly.
    "park": LookSpec(
        top=(0.55, 0.8, 0.95),
        bottom=(0.2, 0.5, 0.15),
        ink=(0.1, 0.35, 0.08),
        texture="noise",
        period_px=30,
        angle_deg=0,
        coverage=0.85,
        motion_deg=200,
        speed_px_s=8,
    ),
    # Asphalt with yellow lane markings rushing toward the camera.
    "traffic": LookSpec(
        top=(0.45, 0.45, 0.45),
        bottom=(0.2, 0.2, 0.22),
        ink=(0.95, 0.8, 0.1),
        texture="stripes",
        period_px=80,
        angle_deg=75,
        coverage=0.55,
        motion_deg=90,
        speed_px_s=90,
    ),
}


@dataclass(frozen=True)
class Scene:
    """A class of the synthetic dataset: its name and the names of its sound and look."""

    name: str
    sound: str
    look: str


SCENES: dict[str, Scene] = {
    scene.name: scene
    for scene in (
        Scene("bus", "vehicle", "bus"),
        Scene("tram", "vehicle", "tram"),
        Scene("airport", "airport", "hall"),
        Scene("shopping_mall", "mall", "hall"),
        Scene("street_pedestrian", "crowd", "pedestrian"),
        Scene("public_square", "crowd", "square"),
        Scene("metro", "metro", "underground"),
        Scene("metro_station", "station", "underground"),
        Scene("park", "park", "park"),
        Scene("street_traffic", "traffic", "traffic"),
    )
}
