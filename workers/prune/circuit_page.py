"""One self-contained HTML page per circuit: an SVG graph you can hover, no network needed.

Columns are the node locations in forward order (plus the embedding and the
candidate-token unembedding at the ends); each kept node is a dot in its
column, sorted by channel index. Weight edges are solid (blue positive, red
negative, opacity by |w|), residual-stream links dashed grey, q/k channel
pairs dotted purple. Hovering a node highlights its links; every node and
link has a tooltip.
"""

from __future__ import annotations

import html
import json
from typing import Any

from ..nn.circuit import EMBED, UNEMBED, WEIGHT_EDGE_KINDS

COLUMN_GAP, ROW_GAP, TOP, LEFT = 118, 16, 70, 60
STYLE = """
body { font: 13px system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0 2em 1em 0; display: inline-table; vertical-align: top; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th { background: #f4f4f4; text-align: left; }
svg line { pointer-events: stroke; }
svg .dim { opacity: 0.06 !important; }
svg .hot { opacity: 1 !important; stroke-width: 2.5; }
svg circle:hover { stroke: #000; stroke-width: 2; }
.column { font-size: 11px; fill: #444; }
"""
SCRIPT = """
const svg = document.querySelector('svg');
svg.querySelectorAll('circle').forEach(node => {
  node.addEventListener('mouseenter', () => {
    svg.querySelectorAll('line').forEach(l => {
      const on = l.dataset.s === node.id || l.dataset.t === node.id;
      l.classList.add(on ? 'hot' : 'dim');
    });
  });
  node.addEventListener('mouseleave',
    () => svg.querySelectorAll('line').forEach(l => l.classList.remove('hot', 'dim')));
});
"""


def _table(title: str, rows: dict[str, Any]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows.items())
    return f"<table><tr><th colspan=2>{html.escape(title)}</th></tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _columns(data: dict[str, Any]) -> list[str]:
    return [EMBED, *data["kept"].keys(), UNEMBED]


def _positions(data: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Node id -> (x, y). Embedding/unembedding nodes are the link endpoints that use them."""
    members: dict[str, set[int]] = {column: set() for column in _columns(data)}
    for location, indices in data["kept"].items():
        members[location].update(indices)
    for edge in data["edges"]:
        for end in (edge["source"], edge["target"]):
            location, _, index = end.rpartition(":")
            if location in (EMBED, UNEMBED):
                members[location].add(int(index))
    return {
        f"{column}:{index}": (LEFT + c * COLUMN_GAP, TOP + r * ROW_GAP)
        for c, column in enumerate(_columns(data))
        for r, index in enumerate(sorted(members[column]))
    }


def _edge_svg(edge: dict[str, Any], positions: dict[str, tuple[float, float]], max_weight: float) -> str:
    (x1, y1), (x2, y2) = positions[edge["source"]], positions[edge["target"]]
    weight = edge.get("weight")
    tip = f"{edge['kind']}: {edge['source']} → {edge['target']}" + (f"  w={weight:.4g}" if weight is not None else "")
    if edge["kind"] in WEIGHT_EDGE_KINDS or edge["kind"] == "write_unembed":
        colour = "#1f5fbf" if weight >= 0 else "#c0392b"
        style = f'stroke="{colour}" stroke-opacity="{0.25 + 0.75 * abs(weight) / max_weight:.3f}" stroke-width="1.3"'
    elif edge["kind"] == "qk_pair":
        style = 'stroke="#8e44ad" stroke-opacity="0.6" stroke-dasharray="2,3"'
    else:
        style = 'stroke="#888" stroke-opacity="0.35" stroke-dasharray="5,4"'
    ids = f'data-s="{html.escape(edge["source"])}" data-t="{html.escape(edge["target"])}"'
    return f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" {style} {ids}><title>{html.escape(tip)}</title></line>'


def _node_svg(node_id: str, x: float, y: float, ablation: dict[str, float], token_text: dict[str, str]) -> str:
    location, _, index = node_id.rpartition(":")
    tip = {
        EMBED: f"embedding, residual channel {index}",
        UNEMBED: f"unembedding, token {index} {token_text.get(index, '')!r}",
    }.get(location, f"{location} #{index}")
    if node_id in ablation:
        tip += f"\nablated to {ablation[node_id]:.4g}"
    fill = {EMBED: "#2c3e50", UNEMBED: "#2c3e50"}.get(location, "#e67e22" if ".attn." in location else "#16a085")
    label = f'<text x="{x + 7}" y="{y + 4}" font-size="9" fill="#666">{html.escape(index)}</text>'
    circle = f'<circle id="{html.escape(node_id)}" cx="{x}" cy="{y}" r="5" fill="{fill}">'
    return f"{circle}<title>{html.escape(tip)}</title></circle>{label}"


MAX_DRAWN_EDGES = 4000  # past this a page is tens of MB and unreadable; circuit.json keeps every edge


def _strongest(edges: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    if len(edges) <= limit:
        return edges
    return sorted(edges, key=lambda e: -abs(e["weight"]) if e.get("weight") is not None else 0.0)[:limit]


def render_circuit_html(data: dict[str, Any], max_edges: int = MAX_DRAWN_EDGES) -> str:
    """A page for `circuit.circuit_to_json(...)` output (drawing at most `max_edges` of the strongest edges)."""
    positions = _positions(data)
    columns = _columns(data)
    weights = [abs(e["weight"]) for e in data["edges"] if e.get("weight") is not None]
    max_weight = max(weights, default=1.0) or 1.0
    ablation = {node["id"]: node["ablation_value"] for node in data["nodes"] if "ablation_value" in node}
    height = (
        TOP
        + ROW_GAP * max(1, max((sum(1 for p in positions if p.rpartition(":")[0] == c) for c in columns), default=1))
        + 20
    )
    width = LEFT + COLUMN_GAP * len(columns)
    headers = "".join(
        f'<text class="column" x="{LEFT + c * COLUMN_GAP}" y="{20 + 14 * (c % 2)}" '
        f'text-anchor="middle">{html.escape(column)}</text>'
        for c, column in enumerate(columns)
    )
    drawable = [e for e in data["edges"] if e["source"] in positions and e["target"] in positions]
    shown = _strongest(drawable, max_edges)
    edges = "".join(_edge_svg(e, positions, max_weight) for e in shown)
    omitted = (
        f"<p><b>Showing the {len(shown)} strongest of {len(drawable)} links</b>; circuit.json lists them all.</p>"
        if len(shown) < len(drawable)
        else ""
    )
    nodes = "".join(
        _node_svg(node_id, x, y, ablation, data.get("token_text", {})) for node_id, (x, y) in positions.items()
    )
    title = f"circuit: {data.get('task', '?')} on {data.get('cell') or data.get('checkpoint', '?')}"
    tables = _table("size", data["counts"])
    for key in ("losses", "evaluation", "calibration", "hyperparameters"):
        if isinstance(data.get(key), dict):
            tables += _table(key, data[key])
    return (
        "<!doctype html><html><head><meta "
        f"charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h2>{html.escape(title)}</h2>{tables}"
        "<p>Solid: weight edges (blue +, red −). Dashed grey: residual-stream links. Dotted purple: q/k channel "
        "pairs. "
        f"Hover a node to highlight its links.</p>{omitted}"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{headers}{edges}{nodes}</svg>'
        f"<script>{SCRIPT}</script></body></html>"
    )
