"""Rendering spectrograms to labelled PNG images (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avsc_core.atomic import atomic_write

TITLES = {"mel": "MEL", "gam": "Gammatone", "cqt": "CQT"}


def frequency_ticks(frequencies: np.ndarray, count: int = 7) -> tuple[np.ndarray, list[str]]:
    """Bin positions and labels (Hz / kHz) for an axis of bins with these frequencies."""
    positions = np.linspace(0, len(frequencies) - 1, count).round().astype(int)
    labels = []
    for f in frequencies[positions]:
        labels.append(f"{f / 1000:.1f}k" if f >= 1000 else f"{f:.0f}")
    return positions, labels


def render_spectrogram_png(
    out: str | Path,
    log_spec: np.ndarray,
    frequencies: np.ndarray,
    seconds_per_frame: float,
    kind: str,
    title: str | None = None,
    start_time: float = 0.0,
) -> Path:
    """Save ``log_spec`` ``(channels, bins, frames)`` as one labelled panel per channel.

    Time (s) runs along x, frequency (Hz, low at the bottom) along y, with a colour bar.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    channels, n_bins, n_frames = log_spec.shape
    names = ["left", "right"] if channels == 2 else [f"channel {i + 1}" for i in range(channels)]
    fig, axes = plt.subplots(channels, 1, figsize=(10, 2.6 * channels + 0.6), squeeze=False)
    extent = (start_time, start_time + n_frames * seconds_per_frame, -0.5, n_bins - 0.5)
    vmin, vmax = np.percentile(log_spec, [1, 99.9])
    positions, labels = frequency_ticks(frequencies)
    for ax, channel, name in zip(axes[:, 0], log_spec, names):
        image = ax.imshow(
            channel,
            origin="lower",
            aspect="auto",
            extent=extent,
            cmap="magma",
            vmin=vmin,
            vmax=vmax,
            interpolation="nearest",
        )
        ax.set_yticks(positions, labels)
        ax.set_ylabel("frequency (Hz)")
        ax.set_title(f"{TITLES.get(kind, kind)} - {name}", fontsize=10)
        fig.colorbar(image, ax=ax, pad=0.01, label="log magnitude")
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    out = Path(out)
    with atomic_write(out, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
    return out
