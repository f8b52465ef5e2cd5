"""An inline SVG bar chart of the F1 throughput figures (MB/s per NFC AIO buffer setting).

Why hand-written SVG: the matrix page must open offline from a single file, so no chart library or CDN; a grouped
bar chart is a few dozen elements.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#9c755f")
BAR, GAP, MIN_SLOT = 22, 4, 190  # a slot holds one group of bars and its two-line label
LEFT, TOP, BOTTOM, HEIGHT = 56, 30, 64, 220


def _setting_order(setting: str) -> tuple[int, int]:
    size, _, count = setting.partition("x")
    return int(size) * int(count), int(size)


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def throughput_chart(rows: list[tuple[str, str, str, float]]) -> str:
    """SVG for (run label, transport, setting, MB/s) rows; an empty string when there are none."""
    if not rows:
        return ""
    groups: dict[tuple[str, str], dict[str, float]] = {}
    for run, transport, setting, rate in rows:
        groups.setdefault((run, transport), {})[setting] = rate
    settings = sorted({setting for _, _, setting, _ in rows}, key=_setting_order)
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(settings)}
    top = _nice_max(max(rate for *_, rate in rows))
    group_width = len(settings) * (BAR + GAP) - GAP
    slot = max(group_width + 30, MIN_SLOT)
    width = max(LEFT + len(groups) * slot + 20, 600)
    total_height = TOP + HEIGHT + BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="throughput-chart" width="{width}" height="{total_height}" '
        f'viewBox="0 0 {width} {total_height}" role="img" aria-label="F1 throughput in MB/s per buffer setting">',
        f'<text x="{LEFT}" y="16" class="chart-title">'
        "F1 read throughput, MB/s per buffer setting (64 KiB x count)</text>",
    ]
    for tick in range(5):
        value = top * tick / 4
        y = TOP + HEIGHT - HEIGHT * tick / 4
        parts.append(f'<line x1="{LEFT}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{value:g}</text>')
    for index, ((run, transport), rates) in enumerate(groups.items()):
        x0 = LEFT + index * slot + (slot - group_width) / 2
        for position, setting in enumerate(settings):
            if setting not in rates:
                continue
            rate = rates[setting]
            bar = HEIGHT * rate / top
            x = x0 + position * (BAR + GAP)
            label = escape(f"{run}, {transport}, {setting}: {rate:.1f} MB/s")
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{TOP + HEIGHT - bar:.1f}" width="{BAR}" height="{bar:.1f}" '
                f'fill="{colour[setting]}"><title>{label}</title></rect>'
            )
        centre = x0 + group_width / 2
        parts.append(f'<text x="{centre:.1f}" y="{TOP + HEIGHT + 16}" text-anchor="middle">{escape(transport)}</text>')
    runs: dict[str, list[int]] = {}
    for index, (run, _) in enumerate(groups):
        runs.setdefault(run, []).append(index)
    for run, indexes in runs.items():  # one label per run, centred under its groups
        centre = LEFT + (min(indexes) + max(indexes) + 1) * slot / 2
        parts.append(
            f'<text x="{centre:.1f}" y="{TOP + HEIGHT + 30}" text-anchor="middle" class="tick">{escape(run)}</text>'
        )
    for position, setting in enumerate(settings):
        x = LEFT + position * 110
        y = TOP + HEIGHT + 48
        parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colour[setting]}"/>')
        parts.append(f'<text x="{x + 16}" y="{y + 10}">{escape(setting)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
