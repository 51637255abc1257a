"""Timeline pictures of concurrent histories: one self-contained HTML file with an inline SVG.

Rules kept here:
- One lane per process; each op is a bar from invocation to completion, labelled with the call and
  its result. Unknown ops fade out to the right edge (they may take effect any time later).
- The op that could not be linearized is red; ops of the longest linearizable prefix carry their
  position in that linearization (``L1``, ``L2``, ...) so a reader can replay the reasoning.
- No external assets, scripts or fonts: the file must open anywhere, offline, years later.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .checker import KeyReport
from .history import Op, Outcome

_LANE_H = 34
_BAR_H = 20
_LEFT = 70
_WIDTH = 1100
_TOP = 30


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """A nemesis interval to shade on the timeline (end None = still in force at the end)."""

    start_s: float
    end_s: float | None
    name: str


def _color(op: Op, failed: Op | None) -> str:
    if failed is not None and op.id == failed.id:
        return "#d62728"
    if op.outcome is Outcome.UNKNOWN:
        return "#bbbbbb"
    if op.outcome is Outcome.FAIL:
        return "#eeeeee"
    return "#6baed6"


def timeline_svg(
    ops: Sequence[Op],
    *,
    failed: Op | None = None,
    linearized: Sequence[Op] = (),
    faults: Sequence[FaultWindow] = (),
) -> str:
    """An SVG timeline of ``ops``; ``failed`` is highlighted, ``linearized`` numbered, and
    ``faults`` that overlap the window are shaded bands."""
    if not ops:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"></svg>'
    processes = sorted({op.process for op in ops})
    lane = {p: n for n, p in enumerate(processes)}
    t0 = min(op.invoke_s for op in ops)
    finite_ends = [op.complete_s for op in ops if op.complete_s is not None]
    t1 = max([*finite_ends, *(op.invoke_s for op in ops)])
    span = (t1 - t0) or 1.0
    plot_w = _WIDTH - _LEFT - 20

    def x(t: float) -> float:
        return _LEFT + (t - t0) / span * plot_w * 0.92  # leave room on the right for unknown tails

    order = {op.id: n + 1 for n, op in enumerate(linearized)}
    height = _TOP + len(processes) * _LANE_H + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        'font-family="monospace" font-size="11">',
        '<defs><linearGradient id="fade" x1="0" x2="1"><stop offset="0" stop-color="#bbbbbb"/>'
        '<stop offset="1" stop-color="#bbbbbb" stop-opacity="0"/></linearGradient></defs>',
        f'<text x="{_LEFT}" y="16">time {t0:.6f}s .. {t1:.6f}s ({span * 1000:.3f} ms)</text>',
    ]
    for fault in faults:
        f_end = t1 if fault.end_s is None else fault.end_s
        if f_end < t0 or fault.start_s > t1:
            continue
        left, right = x(max(fault.start_s, t0)), x(min(f_end, t1))
        out.append(
            f'<g><title>{html.escape(fault.name)}</title><rect x="{left:.1f}" y="{_TOP - 8}" '
            f'width="{max(right - left, 2):.1f}" height="{height - _TOP - 14}" fill="#ffdd88" '
            f'opacity="0.35"/><text x="{left + 2:.1f}" y="{height - 8}">'
            f"{html.escape(fault.name)}</text></g>"
        )
    for p, n in lane.items():
        y = _TOP + n * _LANE_H
        out.append(f'<text x="4" y="{y + 14}">p{p}</text>')
        out.append(
            f'<line x1="{_LEFT}" y1="{y + _LANE_H - 4}" x2="{_WIDTH - 10}" '
            f'y2="{y + _LANE_H - 4}" stroke="#eeeeee"/>'
        )
    for op in ops:
        y = _TOP + lane[op.process] * _LANE_H
        start = x(op.invoke_s)
        unknown = op.outcome is Outcome.UNKNOWN or op.complete_s is None
        end = _WIDTH - 10 if unknown else max(x(op.complete_s or op.invoke_s), start + 3)
        fill = "url(#fade)" if unknown and (failed is None or op.id != failed.id) else _color(
            op, failed
        )
        label = op.describe()
        if op.id in order:
            label = f"L{order[op.id]} {label}"
        if failed is not None and op.id == failed.id:
            label = f"FAILED: {label}"
        text = html.escape(label)
        out.append(
            f'<g><title>{text} [{op.invoke_s:.6f} .. '
            f'{"inf" if unknown else f"{op.complete_s:.6f}"}]</title>'
            f'<rect x="{start:.1f}" y="{y}" width="{end - start:.1f}" height="{_BAR_H}" '
            f'fill="{fill}" stroke="#333333" stroke-width="0.5"/>'
            f'<text x="{start + 2:.1f}" y="{y + 14}">{text}</text></g>'
        )
    out.append("</svg>")
    return "\n".join(out)


def render_report_html(
    report: KeyReport,
    path: str | Path,
    title: str = "",
    faults: Sequence[FaultWindow] = (),
) -> Path:
    """Write the failing window of a violation (or all listed ops) as a standalone HTML page."""
    window = report.window or report.linearized
    svg = timeline_svg(
        window, failed=report.failed_op, linearized=report.linearized, faults=faults
    )
    failed = report.failed_op.describe() if report.failed_op is not None else "(none)"
    rows = "\n".join(
        f"<tr><td>{op.id}</td><td>p{op.process}</td><td>{op.invoke_s:.6f}</td>"
        f"<td>{'inf' if op.outcome is Outcome.UNKNOWN else f'{op.complete_s:.6f}'}</td>"
        f"<td>{html.escape(op.describe())}</td></tr>"
        for op in window
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title or "linearizability violation")}</title>
<style>body{{font-family:sans-serif}} td{{font-family:monospace;padding:0 8px}}</style></head>
<body>
<h1>{html.escape(title or "Linearizability violation")}</h1>
<p>key <code>{html.escape(report.key)}</code>: {html.escape(report.reason)}</p>
<p>could not place: <code>{html.escape(failed)}</code> (red). Blue: ok; grey fading right: unknown
outcome (may take effect any time after invocation, or never). L<i>n</i>: position in the longest
linearizable prefix found. Yellow bands: faults in force.</p>
{svg}
<h2>Ops in the window</h2>
<table><tr><th>id</th><th>process</th><th>invoke</th><th>complete</th><th>op</th></tr>
{rows}
</table>
<pre>{html.escape(report.describe())}</pre>
</body></html>
"""
    target = Path(path)
    target.write_text(page)
    return target
