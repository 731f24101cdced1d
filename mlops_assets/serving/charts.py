"""Inline SVG charts for the dashboard: drawn on the server, so the page needs no JavaScript or CDN."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

WIDTH, HEIGHT, PAD = 640, 220, 36


def bars(values: list[float], labels: list[str], title: str, colors: list[str] | None = None) -> Markup:
    """Vertical bars with a label under each (every k-th label when crowded)."""
    top = max(values) if values and max(values) > 0 else 1
    slot = (WIDTH - 2 * PAD) / max(1, len(values))
    every = max(1, len(values) // 10)
    parts = []
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        height = (HEIGHT - 2 * PAD) * value / top
        x, y = PAD + i * slot, HEIGHT - PAD - height
        color = colors[i % len(colors)] if colors else "#3b6ea5"
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(1.0, slot - 2):.1f}" height="{height:.1f}" '
            f'fill="{color}"><title>{escape(label)}: {value:g}</title></rect>'
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle">{escape(label)}</text>'
            )
    return _svg(title, parts, f"0 .. {top:g}")


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
    parts = [f'<polyline fill="none" stroke="#3b6ea5" stroke-width="2" points="{path}"/>']
    for (label, value), (x, y) in zip(points, coordinates, strict=True):
        tip = f"<title>{escape(label)}: {value:.4f}</title>"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#3b6ea5">{tip}</circle>')
    for i in sorted({0, len(points) - 1}):
        x = coordinates[i][0]
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle">{escape(points[i][0])}</text>')
    return _svg(title, parts, f"{low:g} .. {high:.2f}")


def _svg(title: str, parts: list[str], scale: str) -> Markup:
    return Markup(
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>'
        f'<text x="{PAD}" y="{PAD - 12}" class="scale">{escape(scale)}</text>{"".join(parts)}</svg>'
    )
