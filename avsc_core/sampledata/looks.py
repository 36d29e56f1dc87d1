"""Synthetic scene pictures: a colour gradient overlaid with a moving, tileable texture.

A :class:`LookSpec` describes the *distribution* of one kind of picture; every call to
:func:`render` draws a new clip from it. Per clip, the colours, the texture's scale and
orientation, the drift speed and direction, the starting position and a fixed pattern of
sensor grain all vary.

Drawing is vectorised: the texture is computed once per clip on a periodic canvas twice the
frame size, and each frame is a shifted window of it (an index lookup), so a 10-s clip at
320x240 and 10 fps takes a few tens of milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

Texture = Literal["stripes", "checker", "blobs", "dots", "noise"]
RGB = tuple[float, float, float]


@dataclass(frozen=True)
class LookSpec:
    """One kind of scene picture.

    Parameters
    ----------
    top, bottom : tuple of float
        RGB colours (0..1) of the vertical background gradient.
    ink : tuple of float
        RGB colour of the texture.
    texture : {"stripes", "checker", "blobs", "dots", "noise"}
        The pattern drawn in ``ink`` over the gradient.
    period_px : float
        Spatial scale of the texture (stripe period, blob spacing...), in pixels of a
        320-pixel-wide frame.
    angle_deg : float
        Orientation of stripes and checkers (0: vertical stripes).
    coverage : float
        Opacity of the texture, 0..1.
    motion_deg : float
        Direction the texture drifts in (0: right, 90: down).
    speed_px_s : float
        Drift speed in pixels per second.
    flicker_hz, flicker_depth : float
        Brightness flicker (lights in a tunnel); depth 0 for none.
    """

    top: RGB
    bottom: RGB
    ink: RGB
    texture: Texture
    period_px: float
    angle_deg: float
    coverage: float
    motion_deg: float
    speed_px_s: float
    flicker_hz: float = 0.0
    flicker_depth: float = 0.0


# Per-clip jitter, chosen so that kinds of look with different palettes never overlap.
_COLOUR_JITTER = 0.05
_SCALE_JITTER = 0.15
_ANGLE_JITTER_DEG = 10.0
_SPEED_JITTER = 0.25
_NOISE_LEVEL = 3.0  # standard deviation of the pixel grain, in 8-bit levels


def render(
    spec: LookSpec,
    seconds: float,
    fps: float,
    width: int,
    height: int,
    rng: np.random.Generator,
) -> Iterator[np.ndarray]:
    """Draw one clip from ``spec``, frame by frame.

    All random choices are made before the first frame is yielded, so a seeded generator
    gives the same frames however the iterator is consumed.

    Yields
    ------
    numpy.ndarray
        uint8 ``(height, width, 3)`` RGB frames, ``round(seconds * fps)`` of them.
    """
    scale = width / 320.0
    top = _jitter_colour(spec.top, rng)
    bottom = _jitter_colour(spec.bottom, rng)
    ink = _jitter_colour(spec.ink, rng)
    period = spec.period_px * scale * rng.uniform(1 - _SCALE_JITTER, 1 + _SCALE_JITTER)
    angle = np.deg2rad(spec.angle_deg + rng.uniform(-1, 1) * _ANGLE_JITTER_DEG)
    coverage = spec.coverage * rng.uniform(0.85, 1.0)
    direction = np.deg2rad(spec.motion_deg + rng.uniform(-1, 1) * _ANGLE_JITTER_DEG)
    speed = spec.speed_px_s * scale * rng.uniform(1 - _SPEED_JITTER, 1 + _SPEED_JITTER)
    flicker_phase = rng.uniform(0, 2 * np.pi)

    canvas_h, canvas_w = 2 * height, 2 * width
    field = _texture(spec.texture, canvas_h, canvas_w, period, angle, rng)
    # Tile the periodic canvas once more along each axis, so that every shifted window is a
    # contiguous slice (a view) rather than a wrapped index lookup.
    alpha = np.tile(coverage * field, (2, 2))[..., None].astype(np.float32)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    gradient = (1 - ramp) * np.asarray(top, np.float32) + ramp * np.asarray(bottom, np.float32)
    gradient = np.broadcast_to(gradient, (height, width, 3)) * 255
    ink_minus_bg = np.asarray(ink, np.float32) * 255 - gradient
    # Fixed-pattern sensor noise: per-clip variation that costs the encoder almost nothing,
    # unlike fresh noise in every frame.
    grain = rng.normal(0, _NOISE_LEVEL, (height, width, 1)).astype(np.float32)
    base = gradient + grain

    origin = rng.uniform(0, [canvas_h, canvas_w])
    frames = round(seconds * fps)
    for i in range(frames):
        t = i / fps
        # Moving the window by -d makes the pattern appear to move by +d.
        top_row = round(origin[0] - speed * np.sin(direction) * t) % canvas_h
        left_col = round(origin[1] - speed * np.cos(direction) * t) % canvas_w
        a = alpha[top_row : top_row + height, left_col : left_col + width]
        frame = base + a * ink_minus_bg
        if spec.flicker_depth > 0:
            frame *= 1 - spec.flicker_depth * (
                0.5 + 0.5 * np.sin(2 * np.pi * spec.flicker_hz * t + flicker_phase)
            )
        yield np.clip(frame, 0, 255).astype(np.uint8)


def _jitter_colour(colour: RGB, rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.asarray(colour) + rng.uniform(-_COLOUR_JITTER, _COLOUR_JITTER, 3), 0, 1)


def _texture(
    kind: Texture, h: int, w: int, period: float, angle: float, rng: np.random.Generator
) -> np.ndarray:
    """A texture field in 0..1 that tiles an ``h x w`` torus, so shifted windows wrap."""
    if kind in ("stripes", "checker"):
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        field = _stripes(y, x, h, w, period, angle, rng)
        if kind == "checker":
            field = field * _stripes(y, x, h, w, period, angle + np.pi / 2, rng)
        return field
    if kind in ("blobs", "dots"):
        # Blobs of radius ~period/3 spaced ~period apart; dots are a denser, finer version.
        radius = period / (3.0 if kind == "blobs" else 6.0)
        count = max(1, int(h * w / period**2 * (0.6 if kind == "blobs" else 1.5)))
        field = np.zeros((h, w), np.float32)
        for cy, cx, r in zip(
            rng.uniform(0, h, count),
            rng.uniform(0, w, count),
            radius * rng.uniform(0.7, 1.3, count),
        ):
            # Stamp each blob on a small window around it (wrapping at the edges) instead
            # of evaluating it over the whole canvas: hundreds of dots stay cheap.
            reach = int(np.ceil(3 * r))
            offsets = np.arange(-reach, reach + 1)
            iy, ix = int(cy), int(cx)
            dy = (iy + offsets - cy)[:, None]
            dx = (ix + offsets - cx)[None, :]
            blob = np.exp(-(dx * dx + dy * dy) / (2 * r * r)).astype(np.float32)
            window = np.ix_((iy + offsets) % h, (ix + offsets) % w)
            field[window] = np.maximum(field[window], blob)
        return field
    # Band-limited noise: a random spectrum restricted to spatial periods near ``period``;
    # the inverse FFT of any spectrum is periodic, so it tiles by construction.
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    radial = np.sqrt(fy**2 + fx**2) * period
    spectrum = (
        rng.standard_normal(radial.shape) + 1j * rng.standard_normal(radial.shape)
    ) * np.exp(-0.5 * ((radial - 1.0) / 0.5) ** 2)
    field = np.fft.irfft2(spectrum, (h, w))
    field = (field - field.mean()) / (field.std() + 1e-9)
    return (1 / (1 + np.exp(-2.5 * field))).astype(np.float32)


def _stripes(
    y: np.ndarray,
    x: np.ndarray,
    h: int,
    w: int,
    period: float,
    angle: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Soft-edged stripes across ``angle``, with whole wave numbers so they tile the torus."""
    kx = round(w * np.cos(angle) / period)
    ky = round(h * np.sin(angle) / period)
    if kx == 0 and ky == 0:
        kx = 1
    phase = 2 * np.pi * (kx * x / w + ky * y / h) + rng.uniform(0, 2 * np.pi)
    return (0.5 + 0.5 * np.tanh(3.0 * np.sin(phase))).astype(np.float32)
