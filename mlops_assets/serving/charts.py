"""Inline SVG charts for the dashboard: drawn on the server, so the page needs no JavaScript or CDN."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

WIDTH, HEIGHT, PAD = 640, 220, 36
ACCENT = "#3b6ea5"
SERIES_COLORS = [ACCENT, "#9aa5b1"]  # the served model, then its baseline


def bars(values: list[float], labels: list[str], title: str, colors: list[str] | None = None) -> Markup:
    """Vertical bars with a label under each (every k-th label when crowded)."""
    return _bars([("", values, colors or [ACCENT])], labels, title)


def grouped_bars(series: dict[str, list[float]], labels: list[str], title: str) -> Markup:
    """Bars side by side per label, one color per series, with a legend (a model beside its baseline)."""
    named = [(name, values, [color]) for (name, values), color in zip(series.items(), SERIES_COLORS, strict=False)]
    return _bars(named, labels, title)


def _bars(series: list[tuple[str, list[float], list[str]]], labels: list[str], title: str) -> Markup:
    everything = [value for _, values, _ in series for value in values]
    top = max(everything) if everything and max(everything) > 0 else 1
    slot = (WIDTH - 2 * PAD) / max(1, len(labels))
    width = slot / max(1, len(series))
    every = max(1, len(labels) // 10)
    parts = []
    for s, (name, values, colors) in enumerate(series):
        for i, (value, label) in enumerate(zip(values, labels, strict=True)):
            height = (HEIGHT - 2 * PAD) * max(value, 0) / top
            x, y = PAD + i * slot + s * width, HEIGHT - PAD - height
            tip = f"{label}{' ' + name if name else ''}: {value:g}"
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(1.0, width - 2):.1f}" height="{height:.1f}" '
                f'fill="{colors[i % len(colors)]}"><title>{escape(tip)}</title></rect>'
            )
    for i, label in enumerate(labels):
        if i % every == 0:
            x = PAD + (i + 0.5) * slot
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle">{escape(label)}</text>')
    return _svg(title, parts + _legend([(name, colors[0]) for name, _, colors in series if name]), f"0 .. {top:g}")


def line(points: list[tuple[str, float]], title: str, low: float = 0.0, high: float | None = None) -> Markup:
    """A line over labelled x positions (dates), with a dot per point."""
    if not points:
        return _svg(title, ['<text x="50%" y="50%" text-anchor="middle">no data yet</text>'], "")
    values = [value for _, value in points]
    high = high if high is not None else (max(values) * 1.25 or 1.0)
    step = (WIDTH - 2 * PAD) / max(1, len(points) - 1)

    def position(i: int, value: float) -> tuple[float, float]:
        return PAD + i * step, HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value - low) / (high - low)

    coordinates = [position(i, value) for i, value in enumerate(values)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
    parts = [f'<polyline fill="none" stroke="{ACCENT}" stroke-width="2" points="{path}"/>']
    for (label, value), (x, y) in zip(points, coordinates, strict=True):
        tip = f"<title>{escape(label)}: {value:.4f}</title>"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{ACCENT}">{tip}</circle>')
    for i in sorted({0, len(points) - 1}):
        x = coordinates[i][0]
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle">{escape(points[i][0])}</text>')
    return _svg(title, parts, f"{low:g} .. {high:.2f}")


def calibration(series: dict[str, list[tuple[float, float]]], title: str) -> Markup:
    """Observed share against mean predicted probability per decile, both axes on [0, top]; the dashed
    diagonal is perfect calibration, a curve below it over-predicts."""
    everything = [value for points in series.values() for point in points for value in point]
    top = min(1.0, max(everything, default=1.0) * 1.1) or 1.0
    size = HEIGHT - 2 * PAD

    def position(predicted: float, observed: float) -> tuple[float, float]:
        return PAD + (WIDTH - 2 * PAD) * predicted / top, HEIGHT - PAD - size * observed / top

    (x0, y0), (x1, y1) = position(0, 0), position(top, top)
    parts = [f'<line x1="{x0}" y1="{y0}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="#999" stroke-dasharray="4 4"/>']
    for (name, points), color in zip(series.items(), SERIES_COLORS, strict=False):
        coordinates = [position(p, o) for p, o in points]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        for (predicted, observed), (x, y) in zip(points, coordinates, strict=True):
            tip = f"{name}: predicted {predicted:.3f}, observed {observed:.3f}"
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{escape(tip)}</title></circle>'
            )
    parts.append(f'<text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 14}" text-anchor="end">mean predicted</text>')
    legend = _legend([(name, color) for name, color in zip(series, SERIES_COLORS, strict=False)])
    return _svg(title, parts + legend, f"observed 0 .. {top:.2f}")


def _legend(entries: list[tuple[str, str]]) -> list[str]:
    parts = []
    for i, (name, color) in enumerate(entries):
        x = WIDTH - PAD - 110 * (len(entries) - i)
        parts.append(f'<rect x="{x}" y="{PAD - 22}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{x + 14}" y="{PAD - 13}">{escape(name)}</text>')
    return parts


def _svg(title: str, parts: list[str], scale: str) -> Markup:
    return Markup(
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>'
        f'<text x="{PAD}" y="{PAD - 12}" class="scale">{escape(scale)}</text>{"".join(parts)}</svg>'
    )
