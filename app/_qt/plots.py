"""pyqtgraph panels: probability bars, the timeline, spectrograms, training curves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QTabWidget, QVBoxLayout, QWidget

from app.preview import PreviewAxes, SegmentPreview
from app.results import Bars, Timeline
from app.training import Curve, stage_title

BAR = (90, 130, 190)
BAR_TOP = (220, 110, 40)
MISSING = (130, 130, 130)


def configure() -> None:
    """Global pyqtgraph look: light background, row-major images.

    Antialiasing stays off: it makes every repaint of the plots about a third slower, and
    repaints run on the GUI thread.
    """
    pg.setConfigOptions(antialias=False, background="w", foreground="k",
                        imageAxisOrder="row-major")


def colours(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinguishable colours."""
    cmap = pg.colormap.get("CET-C6s") if n > 10 else None
    if cmap is None:
        base = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
        return [base[i % len(base)] for i in range(n)]
    return [tuple(int(c) for c in cmap.map(i / n, mode="byte")[:3]) for i in range(n)]


def _static(plot: pg.PlotItem) -> None:
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setMenuEnabled(False)


class BarsRow(pg.GraphicsLayoutWidget):
    """Horizontal bar charts side by side, one per branch or backbone, classes shared.

    A chart without values shows its note ("no audio track") instead of bars. The plots
    are made once and reused: building a pyqtgraph plot costs tens of milliseconds, too
    much to do on the GUI thread for every result.
    """

    def __init__(self, columns: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(False)
        self.notes: dict[str, str] = {}
        self.values: dict[str, tuple[float, ...]] = {}
        self._plots: list[pg.PlotItem] = []
        for col in range(columns):
            plot = pg.PlotItem()
            _static(plot)
            # Many backbones must still fit side by side in the result column.
            plot.setMinimumWidth(30)
            plot.getViewBox().setMinimumWidth(20)
            plot.getAxis("bottom").setTicks([[(0, "0"), (0.5, ".5"), (1, "1")]])
            plot.invertY(True)
            if col:
                plot.getAxis("left").setStyle(showValues=False)
                plot.getAxis("left").setWidth(4)
            self._plots.append(plot)

    def set_bars(self, charts: Sequence[Bars]) -> None:
        self.ci.clear()
        self.notes, self.values = {}, {}
        for col, (bars, plot) in enumerate(zip(charts, self._plots)):
            self.ci.addItem(plot, row=0, col=col)
            for item in list(plot.items):
                plot.removeItem(item)
            plot.setTitle(bars.title, size="9pt")
            n = len(bars.classes)
            plot.getAxis("left").setTicks(
                [[(i, c.replace("_", " ")) for i, c in enumerate(bars.classes)]])
            plot.setXRange(0, 1, padding=0.02)
            plot.setYRange(-0.6, n - 0.4, padding=0)
            if bars.values is None:
                note = bars.note or "no answer"
                self.notes[bars.key] = note
                text = pg.TextItem(note, color=MISSING, anchor=(0.5, 0.5))
                text.setPos(0.5, (n - 1) / 2)
                plot.addItem(text)
                continue
            self.values[bars.key] = bars.values
            best = int(np.argmax(bars.values))
            brushes = [pg.mkBrush(BAR_TOP if i == best else BAR) for i in range(n)]
            plot.addItem(pg.BarGraphItem(
                x0=np.zeros(n), y=np.arange(n), height=0.7, width=np.asarray(bars.values),
                brushes=brushes, pen=None,
            ))


class TimelinePlot(pg.PlotWidget):
    """Class probabilities over time; a click picks the nearest segment."""

    segment_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(False)
        self.timeline: Timeline | None = None
        plot = self.getPlotItem()
        _static(plot)
        plot.setLabel("bottom", "time (s)")
        plot.setLabel("left", "probability")
        plot.setYRange(0, 1, padding=0.02)
        self._legend = plot.addLegend(offset=(-5, 5), labelTextSize="8pt",
                                      brush=pg.mkBrush(255, 255, 255, 210))
        self._cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen((60, 60, 60), width=2,
                                                              style=Qt.PenStyle.DashLine))
        self.scene().sigMouseClicked.connect(self._clicked)

    def set_timeline(self, timeline: Timeline) -> None:
        plot = self.getPlotItem()
        plot.clear()
        self._legend.clear()
        self.timeline = timeline
        if timeline.probs is None:
            return
        shown = set(timeline.main_classes())
        for i, (name, colour) in enumerate(zip(timeline.classes,
                                               colours(len(timeline.classes)))):
            # Every class is drawn; only those that matter get a legend entry.
            plot.plot(timeline.centres, timeline.probs[:, i], pen=pg.mkPen(colour, width=2),
                      symbol="o", symbolSize=6, symbolBrush=colour, symbolPen=None,
                      name=name.replace("_", " ") if name in shown else None)
        plot.addItem(self._cursor)
        plot.setXRange(float(timeline.starts.min()), float(timeline.ends.max()), padding=0.01)

    def set_cursor(self, index: int | None) -> None:
        if self.timeline is None or index is None:
            self._cursor.hide()
            return
        self._cursor.setPos(float(self.timeline.centres[index]))
        self._cursor.show()

    def _clicked(self, event) -> None:
        if self.timeline is None or not len(self.timeline.starts):
            return
        view = self.getPlotItem().vb
        if not view.sceneBoundingRect().contains(event.scenePos()):
            return
        x = view.mapSceneToView(event.scenePos()).x()
        self.segment_clicked.emit(self.timeline.segment_at(x))


class SpectrogramPanel(QWidget):
    """MEL / GAM / CQT tabs of one segment, a channel choice and a colour bar each."""

    KINDS = (("mel", "MEL"), ("gam", "GAM"), ("cqt", "CQT"))

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.axes: PreviewAxes | None = None
        self.preview: SegmentPreview | None = None
        self.channel = QComboBox()
        self.channel.addItems(["left", "right"])
        self.channel.currentIndexChanged.connect(lambda _: self._draw())
        self.tabs = QTabWidget()
        self.plots: dict[str, pg.PlotWidget] = {}
        self._images: dict[str, pg.ImageItem] = {}
        self._bars: dict[str, pg.ColorBarItem] = {}
        self._notes: dict[str, pg.TextItem] = {}
        for kind, title in self.KINDS:
            widget = pg.PlotWidget()
            widget.setAcceptDrops(False)
            plot = widget.getPlotItem()
            _static(plot)
            plot.setLabel("bottom", "time (s)")
            plot.setLabel("left", "frequency (Hz)")
            image = pg.ImageItem()
            plot.addItem(image)
            bar = pg.ColorBarItem(colorMap="magma", label="log magnitude", interactive=False,
                                  width=12)
            bar.setImageItem(image, insert_in=plot)
            note = pg.TextItem("", color=MISSING, anchor=(0.5, 0.5))
            plot.addItem(note)
            self.plots[kind], self._images[kind], self._bars[kind] = widget, image, bar
            self._notes[kind] = note
            self.tabs.addTab(widget, title)
        top = QHBoxLayout()
        top.addWidget(QLabel("Spectrogram of the selected segment"))
        top.addStretch(1)
        top.addWidget(QLabel("channel"))
        top.addWidget(self.channel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.tabs)

    def set_axes(self, axes: PreviewAxes) -> None:
        self.axes = axes
        for kind, _ in self.KINDS:
            self.plots[kind].getPlotItem().getAxis("left").setTicks([axes.ticks[kind]])

    def show_segment(self, preview: SegmentPreview | None, note: str = "") -> None:
        self.preview = preview
        self._draw(note)

    def clear(self, note: str = "") -> None:
        self.show_segment(None, note)

    def _draw(self, note: str = "") -> None:
        preview = self.preview
        for kind, _ in self.KINDS:
            image, text = self._images[kind], self._notes[kind]
            spec = preview.spectrograms.get(kind) if preview is not None else None
            plot = self.plots[kind].getPlotItem()
            if spec is None or preview.spectrogram_times is None:
                image.clear()
                message = note or ("no audio track" if preview is not None else "")
                text.setText(message)
                text.setPos(0.5, 0.5)
                plot.setRange(xRange=(0, 1), yRange=(0, 1))
                self._show_axes(kind, False)
                continue
            text.setText("")
            self._show_axes(kind, True)
            channel = min(self.channel.currentIndex(), spec.shape[0] - 1)
            data = spec[channel]
            times = preview.spectrogram_times
            step = float(times[1] - times[0]) if len(times) > 1 else 0.032
            x0 = float(times[0]) - step / 2
            image.setImage(data, autoLevels=False)
            image.setRect(QRectF(x0, 0, step * data.shape[1], data.shape[0]))
            low, high = np.percentile(data, [1, 99.9])
            self._bars[kind].setLevels((float(low), float(max(high, low + 1e-3))))
            plot.setRange(
                xRange=(x0, x0 + step * data.shape[1]), yRange=(0, data.shape[0]), padding=0
            )

    def _show_axes(self, kind: str, visible: bool) -> None:
        """Axes and colour bar only around a spectrogram, not around a note."""
        plot = self.plots[kind].getPlotItem()
        for side in ("left", "bottom"):
            plot.showAxis(side, visible)
        self._bars[kind].setVisible(visible)


class CurvesPlot(pg.PlotWidget):
    """One training metric per epoch for every stage (train solid, validation dashed).

    Each stage's two lines are made once and then only given new data, which keeps a
    redraw after every epoch cheap on the GUI thread.
    """

    def __init__(self, metric: str, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        # Not "self.metric": that would hide QPaintDevice.metric(), which Qt calls.
        self.metric_name = metric
        plot = self.getPlotItem()
        plot.setTitle(title)
        plot.setLabel("bottom", "epoch")
        # No grid: grid lines belong to the axes, which would then be repainted (with all
        # their text) whenever a curve changes.
        # Accuracy rises and loss falls: each legend goes where its curves are not.
        corner = (-5, -5) if metric == "accuracy" else (-5, 5)
        self._legend = plot.addLegend(offset=corner, labelTextSize="8pt",
                                      brush=pg.mkBrush(255, 255, 255, 210))
        # Ranges are set once per update: autorange would repaint the axes several times.
        plot.disableAutoRange()
        self._lines: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}

    def set_curves(self, curves: dict[str, Curve]) -> None:
        plot = self.getPlotItem()
        if set(self._lines) - set(curves):
            # A new run: start from an empty plot.
            plot.clear()
            self._legend.clear()
            self._lines = {}
        palette = colours(10)
        last_epoch, values = 1, []
        for stage, curve in curves.items():
            if not curve.epochs:
                continue
            if stage not in self._lines:
                colour = palette[len(self._lines) % len(palette)]
                name = stage_title(stage).split(": ", 1)[-1]
                train = plot.plot(pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=5,
                                  symbolBrush=colour, symbolPen=None, name=name)
                val = plot.plot(pen=pg.mkPen(colour, width=2, style=Qt.PenStyle.DashLine))
                self._lines[stage] = (train, val)
            train, val = self._lines[stage]
            x = np.array(curve.epochs, float)
            y = np.array(curve.values[self.metric_name])
            y_val = np.array(curve.values[f"val_{self.metric_name}"])
            train.setData(x, y)
            if np.isfinite(y_val).any():
                val.setData(x, y_val, connect="finite")
            last_epoch = max(last_epoch, int(x.max()))
            values += [v for v in (*y, *y_val) if np.isfinite(v)]
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        if self.metric_name == "accuracy":
            low, high = 0.0, 1.0
        margin = max(high - low, 1e-3) * 0.05
        plot.setRange(xRange=(0.5, last_epoch + 0.5), yRange=(low - margin, high + margin),
                      padding=0)
