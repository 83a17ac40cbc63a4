"""The HTML report's timeline: one lane per process, one mark per contact, coloured by layer.

Built with plotly; the page embeds plotly.js inline so it opens offline. Every string from a
capture is HTML-escaped before it reaches plotly, whose hover labels and tick labels accept a
subset of HTML (``<b>``, ``<a href>``...): a hostile hostname must show as text, not markup.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..base.model import Contact
from .describe import (
    LAYER_ORDER,
    LAYER_TITLE,
    contact_detail,
    contact_ops,
    contact_process_label,
    endpoint,
    fmt_time,
    process_sort_key,
)

LAYER_COLOR = {"dns": "#0891b2", "tls": "#16a34a", "http": "#c026d3", "socks": "#ca8a04"}
FINDING_COLOR = "#dc2626"
# Within a process lane, DNS marks sit above TLS and HTTP below, so a query and the connection
# that follows it at the same instant do not hide each other.
LAYER_OFFSET = {"dns": -0.22, "tls": 0.0, "http": 0.22, "socks": 0.33}
TIMELINE_ID = "timeline"

# Runs once plotly has drawn the figure: counts the marks actually drawn in the SVG (not the data
# handed to plotly), so a test in a real browser can check there is one mark per contact.
COUNT_SCRIPT = """
var gd = document.getElementById('{plot_id}');
var n = gd.querySelectorAll('.scatterlayer .trace .points path.point').length;
gd.setAttribute('data-plotted-points', String(n));
document.body.setAttribute('data-plotted-points', String(n));
"""


def _esc(value: object, limit: int = 120) -> str:
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=True)


def _iso(ts: float) -> str:
    # Naive UTC strings: plotly would otherwise shift times into the viewer's zone.
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def hover_text(c: Contact) -> str:
    lines = [f"<b>{_esc(c.host)}</b> · {LAYER_TITLE.get(c.layer, _esc(c.layer))}",
             f"{fmt_time(c.ts)} UTC"]
    proc = c.process
    who = _esc(contact_process_label(c))
    if proc is not None:
        who += f" [{_esc(proc.source)}]"
        if proc.cmdline:
            lines.append(who)
            who = _esc(proc.cmdline, 90)
    lines.append(who)
    ops = contact_ops(c)
    if ops:
        label = "operation" if len(ops) == 1 else "operations"
        lines.append(f"{label}: {_esc(', '.join(ops), 100)}")
    detail = contact_detail(c)
    if detail:
        lines.append(_esc(detail, 100))
    lines.append(f"{_esc(c.src)}:{c.sport} → {_esc(endpoint(c))}")
    if c.cause:
        lines.append(f"cause: {_esc(c.cause, 100)}")
    for f in c.findings:
        lines.append(f"<b>! {_esc(f.kind)}</b>: {_esc(f.detail, 100)}")
    return "<br>".join(lines)


def lanes(contacts: Sequence[Contact]) -> list[str]:
    """Process labels top to bottom: attributed processes by first contact, unattributed last."""
    first: dict[str, float] = {}
    for c in contacts:
        label = contact_process_label(c)
        first[label] = min(c.ts, first.get(label, c.ts))
    return sorted(first, key=lambda label: process_sort_key(label, first[label]))


def timeline_figure(contacts: Sequence[Contact]) -> Any:
    """A plotly Figure with exactly one point per contact (traces per layer and finding)."""
    import plotly.graph_objects as go

    order = lanes(contacts)
    lane_of = {label: i for i, label in enumerate(order)}
    fig = go.Figure()
    layers = [x for x in LAYER_ORDER if any(c.layer == x for c in contacts)]
    layers += sorted({c.layer for c in contacts} - set(layers))
    for layer in layers:
        items = sorted((c for c in contacts if c.layer == layer), key=lambda c: c.ts)
        plain = [c for c in items if not c.findings]
        flagged = [c for c in items if c.findings]
        # Contacts with findings get their own trace (same legend group, no legend entry): plotly
        # draws a legend symbol from the first point, which must look like the plain layer mark.
        for group, marked in ((plain, False), (flagged, True)):
            if not group:
                continue
            fig.add_trace(go.Scatter(
                x=[_iso(c.ts) for c in group],
                y=[lane_of[contact_process_label(c)] + LAYER_OFFSET.get(layer, 0.0) for c in group],
                mode="markers",
                name=LAYER_TITLE.get(layer, _esc(layer)),
                legendgroup=layer,
                showlegend=not marked or not plain,
                hovertext=[hover_text(c) for c in group],
                hovertemplate="%{hovertext}<extra></extra>",
                marker={
                    "color": LAYER_COLOR.get(layer, "#64748b"),
                    "size": 15 if marked else 11,
                    "symbol": "diamond" if marked else "circle",
                    "line": {"color": FINDING_COLOR if marked else "#ffffff",
                             "width": 3 if marked else 1},
                    "opacity": 0.9,
                },
            ))
    if any(c.findings for c in contacts):
        # Legend entry only: "legendonly" traces are never drawn, so the mark count stays exact.
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", name="with finding", visible="legendonly",
            marker={"color": "#ffffff", "size": 13, "symbol": "diamond",
                    "line": {"color": FINDING_COLOR, "width": 3}},
        ))
    fig.update_layout(
        template="plotly_white",
        height=140 + 60 * len(order),
        margin={"l": 10, "r": 10, "t": 34, "b": 40},
        # Legend top left: the mode bar takes the top right corner.
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0.0},
        hoverlabel={"align": "left"},
        xaxis={"title": {"text": "time (UTC)"}, "type": "date", "showgrid": True},
        # Numeric lanes with category labels, so each layer gets its own row inside a lane.
        yaxis={"tickmode": "array", "tickvals": list(range(len(order))),
               "ticktext": [_esc(x, 60) for x in order], "range": [len(order) - 0.5, -0.5],
               "zeroline": False, "showgrid": False, "automargin": True, "title": {"text": ""}},
        shapes=[{"type": "rect", "xref": "paper", "yref": "y", "x0": 0, "x1": 1,
                 "y0": i - 0.5, "y1": i + 0.5, "fillcolor": "#f1f5f9", "line": {"width": 0},
                 "layer": "below"} for i in range(0, len(order), 2)],
    )
    return fig


def timeline_html(contacts: Sequence[Contact]) -> str:
    """The timeline as an HTML fragment with plotly.js inline (no CDN, opens offline)."""
    import plotly.io as pio

    return str(pio.to_html(
        timeline_figure(contacts), full_html=False, include_plotlyjs=True, div_id=TIMELINE_ID,
        post_script=COUNT_SCRIPT,
        config={"displaylogo": False, "responsive": True,
                "modeBarButtonsToRemove": ["select2d", "lasso2d"]},
    ))
