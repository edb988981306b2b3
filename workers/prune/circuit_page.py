"""One self-contained HTML page per circuit: the kept nodes and their links, and what each node does.

The page is static: its script, style and data are inline (viewer.js, viewer.css and the circuit's
JSON), so it opens from the store folder or any copy of it with no server and no network.

- Graph: only kept nodes, one column per node location in forward order (embedding channels on
  the left, the task's candidate tokens on the right), grouped by layer. Weight edges are solid,
  width by |weight|, blue positive and red negative; residual-stream links dashed grey; q/k
  channel pairs dotted purple. Pan (drag), zoom (wheel, buttons), filter weight edges by |w|,
  search a node by name (`2.attn.q[17]`).
- Node panel (click a node): its name, its ablation value, its in- and out-edges with weights,
  its top and bottom activating pretraining contexts and its activation on both prompts of a
  few task pairs (`node_examples`, stored in circuit.json under "activations").
- Ablation view: the test loss of the full model, of the circuit, and of the circuit with each
  node removed (circuit.json's "node_ablation", stored for small circuits).

Every number the page shows is read from the embedded circuit JSON, never recomputed.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..nn.circuit import EMBED, UNEMBED, WEIGHT_EDGE_KINDS
from .degenerate import explanation

HERE = Path(__file__).parent
SCRIPT_FILE, STYLE_FILE = HERE / "viewer.js", HERE / "viewer.css"
# Past this many links a page is tens of MB; circuit.json keeps every link, the page the strongest.
MAX_DRAWN_EDGES = 20000
LINK_KINDS = (*WEIGHT_EDGE_KINDS, "write_unembed", "residual", "embed_read", "qk_pair")
SUMMARY_TABLES = ("losses", "evaluation", "calibration", "hyperparameters")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _table(title: str, rows: dict[str, Any]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows.items())
    return f"<table class='summary'><tr><th colspan=2>{html.escape(title)}</th></tr>{body}</table>"


def _strongest(edges: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    if len(edges) <= limit:
        return edges
    return sorted(edges, key=lambda e: -abs(e["weight"]) if e.get("weight") is not None else 0.0)[:limit]


def _endpoint(node: str, token_text: dict[str, str]) -> dict[str, Any]:
    location, _, index = node.rpartition(":")
    if location == EMBED:
        name = f"embed[{index}]"
    else:
        name = f"unembed {token_text.get(index, '')!r}"
    return {"id": node, "name": name, "location": location, "index": int(index)}


def graph(data: dict[str, Any], max_edges: int) -> dict[str, Any]:
    """The drawn part of a circuit: nodes (kept ones, then embedding/unembedding endpoints), columns in
    forward order, links as [source, target, kind, weight] over node positions (the strongest max_edges)."""
    nodes = [
        {key: node[key] for key in ("id", "name", "location", "layer", "index", "ablation_value") if key in node}
        for node in data["nodes"]
    ]
    position = {node["id"]: i for i, node in enumerate(nodes)}
    for edge in data["edges"]:
        for end in (edge["source"], edge["target"]):
            if end not in position and end.rpartition(":")[0] in (EMBED, UNEMBED):
                position[end] = len(nodes)
                nodes.append(_endpoint(end, data.get("token_text", {})))
    drawable = [e for e in data["edges"] if e["source"] in position and e["target"] in position]
    shown = _strongest(drawable, max_edges)
    kind = {name: i for i, name in enumerate(LINK_KINDS)}
    present = {node["location"] for node in nodes}
    columns = [c for c in (EMBED, *data["kept"], UNEMBED) if c in present]
    return {
        "nodes": nodes,
        "columns": columns,
        "kinds": list(LINK_KINDS),
        "links": [[position[e["source"]], position[e["target"]], kind[e["kind"]], e.get("weight")] for e in shown],
        "links_total": len(drawable),
    }


def page_data(data: dict[str, Any], max_edges: int = MAX_DRAWN_EDGES) -> dict[str, Any]:
    """What the page's script reads: the circuit JSON with its node and edge lists replaced by `graph`."""
    return {
        **{key: value for key, value in data.items() if key not in ("nodes", "edges")},
        "graph": graph(data, max_edges),
    }


def _script_json(value: Any) -> str:
    """JSON that is safe inside <script>: no "</" can close the element early."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def render_circuit_html(data: dict[str, Any], max_edges: int = MAX_DRAWN_EDGES) -> str:
    """A page for `circuit.circuit_to_json(...)` output, drawing at most `max_edges` of the strongest links."""
    view = page_data(data, max_edges)
    title = f"circuit: {data.get('task', '?')} on {data.get('cell') or data.get('checkpoint', '?')}"
    tables = _table("size", data["counts"]) + "".join(
        _table(key, data[key]) for key in SUMMARY_TABLES if isinstance(data.get(key), dict)
    )
    shown, total = len(view["graph"]["links"]), view["graph"]["links_total"]
    omitted = (
        f"<p class='warn'>The page holds the {shown} strongest of {total} links; circuit.json lists them all.</p>"
        if shown < total
        else ""
    )
    degenerate = explanation(data.get("circuit_kind"))
    if degenerate:
        omitted = f"<p class='warn'>{html.escape(degenerate)}</p>" + omitted
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE_FILE.read_text()}</style></head><body>
<header><h2>{html.escape(title)}</h2><div id="headline"></div></header>
{omitted}
<div id="toolbar">
 <input id="search" list="node-names" placeholder="find a node: 2.attn.q[17]" size="26">
 <datalist id="node-names"></datalist>
 <label>min |w| <input id="min-weight" type="range" min="0" max="1000" value="0"></label>
 <span id="weight-label"></span>
 <label><input id="show-residual" type="checkbox"> residual links</label>
 <button id="zoom-in" title="zoom in">+</button><button id="zoom-out" title="zoom out">−</button>
 <button id="fit">fit</button>
 <span class="legend"><i class="pos"></i>w&gt;0 <i class="neg"></i>w&lt;0 <i class="res"></i>residual
 <i class="qk"></i>q·k pair · width ∝ |w| · drag to pan, wheel to zoom, click a node</span>
</div>
<main><div id="graph"><svg id="canvas" xmlns="http://www.w3.org/2000/svg"><g id="viewport"></g></svg></div>
<aside id="panel"><p class="hint">Click a node to see its weights and what it responds to.</p></aside></main>
<section id="ablation"></section>
<details><summary>All settings and counts</summary>{tables}</details>
<script type="application/json" id="circuit-data">{_script_json(view)}</script>
<script>{SCRIPT_FILE.read_text()}</script>
</body></html>
"""
