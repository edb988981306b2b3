"""The verdict in the report: its headline (over trusted circuits), tables, badges, and the circuit pages' badge.

The report leads with the verdict (`verdict.py`): how many circuits a reader may trust, the headline edges and
dense/sparse ratio over those only, the all-circuit figures beside them labelled as such, every circuit's checks,
and the untrusted circuits with the checks they failed.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from .figures import FIG2, FIG3, write_figures
from .verdict import CHECKS, FAIL, NOT_MEASURED, PASS, TRUSTED, exceeds_model, failing_checks, is_control, is_trusted

TRUSTED_DIR = "trusted"  # the figures over trusted circuits only, with their own index.html
BADGE_COLOURS = {TRUSTED: "#1a7f37", "untrusted": "#b35900", "control": "#666"}
STATUS_TEXT = {PASS: "pass", FAIL: "FAIL", NOT_MEASURED: "not measured"}
EXCEEDS_NOTE = (
    "This circuit exceeds its model: with every other node held at its ablation value it does the task better "
    "than the whole model does. That is a finding about the ablation (what the masks and the ablation values "
    "compute), not a description of what the model computes."
)


def circuit_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The circuits of the study (control cells left out)."""
    return [row for row in rows if not is_control(row)]


def verdict_text(row: dict[str, Any]) -> str:
    if is_trusted(row) or is_control(row):
        return str(row["verdict"])
    return "not trusted: " + ", ".join(
        name if status == FAIL else f"{name} ({status})" for name, status in failing_checks(row).items()
    )


def badge_html(row: dict[str, Any]) -> str:
    kind = TRUSTED if is_trusted(row) else "control" if is_control(row) else "untrusted"
    label = "trusted" if kind == TRUSTED else "control" if kind == "control" else "not trusted"
    return (
        f"<span class='verdict {kind}' title='{html.escape(verdict_text(row), quote=True)}' "
        f"style='background:{BADGE_COLOURS[kind]};color:#fff;border-radius:3px;padding:1px 6px;"
        f"font-size:90%;white-space:nowrap'>{label}</span>"
    )


def inject_badge(page: str, row: dict[str, Any]) -> str:
    """A circuit page (the prune stage's circuit.html) with the verdict at the top of its body."""
    lines = [f"<p><b>Verdict</b> {badge_html(row)} {html.escape(verdict_text(row))}</p>"]
    if exceeds_model(row):
        lines.append(f"<p><b>{html.escape(EXCEEDS_NOTE)}</b></p>")
    if row.get("control_for"):
        lines.append(f"<p>A control: evidence for the circuit {html.escape(row['control_for'])}.</p>")
    block = "<div class='verdict-box' style='border:2px solid #ccc;padding:4px 12px;margin:8px 0'>" + "".join(lines)
    block += "</div>"
    match = re.search(r"<body[^>]*>", page)
    return page[: match.end()] + block + page[match.end() :] if match else block + page


# ----------------------------------------------------------------------------- headline


def verdict_headline(
    rows: list[dict[str, Any]],
    trusted_geomeans: dict[str, dict[str, Any]],
    trusted_ratios: dict[str, Any],
    all_geomeans: dict[str, dict[str, Any]],
    all_ratios: dict[str, Any],
) -> dict[str, Any]:
    """summary.json's "verdict": the headline over trusted circuits, the all-circuit one beside it, the untrusted."""
    circuits = circuit_rows(rows)
    by_checkpoint: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in circuits:
        by_checkpoint[row["checkpoint"]].append(row)
    checkpoints = {}
    for checkpoint, items in sorted(by_checkpoint.items()):
        trusted = trusted_geomeans.get(checkpoint, {})
        every = all_geomeans.get(checkpoint, {})
        checkpoints[checkpoint] = {
            "circuits": len(items),
            "trusted": sum(1 for r in items if is_trusted(r)),
            "common_trusted_tasks": trusted.get("common_tasks", 0),
            "geomean_edges": trusted.get("geomean_edges"),
            "all_circuits_common_tasks": every.get("common_tasks"),
            "all_circuits_geomean_edges": every.get("geomean_edges"),
        }
    return {
        "over": "trusted circuits only",
        "trusted_circuits": sum(1 for r in circuits if is_trusted(r)),
        "circuits": len(circuits),
        "controls": len(rows) - len(circuits),
        "checkpoints": checkpoints,
        "dense_over_sparse_edges": trusted_ratios,
        "all_circuits": {
            "label": "all circuits, untrusted included: not the headline",
            "dense_over_sparse_edges": all_ratios,
        },
        "untrusted": [
            {"cell": f"{r['checkpoint']}:{r['task']}", "failed": failing_checks(r)}
            for r in circuits
            if not is_trusted(r)
        ],
    }


def _count_text(headline: dict[str, Any]) -> str:
    return f"{headline['trusted_circuits']} of {headline['circuits']} circuits are trusted"


def _value(value: Any) -> str:
    return "–" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)


def _ratio_lines(ratios: dict[str, Any]) -> list[str]:
    return [
        f"{sparse} at target {target}: " + ("no common task" if ratio is None else f"{ratio:.1f}x")
        for sparse, by_target in sorted(ratios.items())
        for target, ratio in sorted(by_target.items())
    ]


def _check_cell(row: dict[str, Any], name: str) -> str:
    return STATUS_TEXT.get(row.get("checks", {}).get(name, {}).get("status"), "–")


def _shown(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _control_text(role: str, control: dict[str, Any]) -> str:
    if "status" in control:
        return f"{role} {control['status']}"
    state = "reaches the target" if control["test_reached_target"] else "clear"
    return f"{role} {state} (loss {_shown(control['circuit_loss'])}, {control['edges']} edges)"


def _failed_detail(row: dict[str, Any]) -> list[str]:
    """Each failing check with the numbers that decided it, e.g. "within_model FAIL (circuit_loss 0.1, ...)"."""
    out = []
    for name, status in failing_checks(row).items():
        numbers = {k: v for k, v in row["checks"][name].items() if k not in ("status", "rule")}
        shown = [
            _control_text(k, v) if isinstance(v, dict) and "cell" in v else f"{k} {_shown(v)}"
            for k, v in numbers.items()
            if k not in ("reached_target", "not_measured")  # the controls' roles say it
        ]
        out.append(f"{name} {STATUS_TEXT[status]}" + (f" ({', '.join(shown)})" if shown else ""))
    return out


def verdict_markdown(rows: list[dict[str, Any]], headline: dict[str, Any]) -> str:
    circuits = circuit_rows(rows)
    lines = [
        f"## Verdict: {_count_text(headline)}",
        "",
        "A circuit is trusted when every check passes (`verdict.py`; a check without its evidence is not "
        "measured, not passed). The headline counts trusted circuits only.",
        "",
        "| checkpoint | circuits | trusted | common trusted tasks | geomean edges (trusted) "
        "| geomean edges (all circuits, not the headline) |",
        "|---|---|---|---|---|---|",
    ]
    for checkpoint, info in headline["checkpoints"].items():
        lines.append(
            f"| {checkpoint} | {info['circuits']} | {info['trusted']} | {info['common_trusted_tasks']} | "
            f"{_value(info['geomean_edges'])} | {_value(info['all_circuits_geomean_edges'])} "
            f"({_value(info['all_circuits_common_tasks'])} tasks) |"
        )
    trusted_ratios = _ratio_lines(headline["dense_over_sparse_edges"]) or ["none (no trusted pair)"]
    all_ratios = _ratio_lines(headline["all_circuits"]["dense_over_sparse_edges"]) or ["none"]
    lines += [
        "",
        f"Dense / sparse edges, trusted circuits: {'; '.join(trusted_ratios)}. "
        f"All circuits (not the headline): {'; '.join(all_ratios)}.",
        "",
        "| checkpoint | task | verdict | " + " | ".join(CHECKS) + " |",
        "|---" * (3 + len(CHECKS)) + "|",
    ]
    for r in circuits:
        verdict = "trusted" if is_trusted(r) else "not trusted"
        lines.append(
            f"| {r['checkpoint']} | {r['task']} | {verdict} | " + " | ".join(_check_cell(r, c) for c in CHECKS) + " |"
        )
    untrusted = [r for r in circuits if not is_trusted(r)]
    if untrusted:
        lines += ["", "Untrusted circuits and the checks they failed:", "", "| checkpoint | task | failed checks |"]
        lines.append("|---|---|---|")
        for r in untrusted:
            lines.append(f"| {r['checkpoint']} | {r['task']} | {'; '.join(_failed_detail(r))} |")
    return "\n".join(lines) + "\n\n"


def _figure_pair(name: str, trusted_count: int, all_count: int, has_trusted: bool) -> str:
    trusted = (
        f"<img src='{TRUSTED_DIR}/{name}.png' style='max-width:100%'>"
        if has_trusted
        else "<p>No trusted circuit: nothing to plot.</p>"
    )
    return (
        "<div style='display:flex;gap:1em;align-items:flex-start'>"
        f"<figure style='flex:1'>{trusted}<figcaption><b>trusted circuits only ({trusted_count})</b></figcaption>"
        "</figure>"
        f"<figure style='flex:1;opacity:0.75'><img src='{name}.png' style='max-width:100%'><figcaption>all circuits "
        f"({all_count}), untrusted included: not the headline</figcaption></figure></div>"
    )


def verdict_section_html(rows: list[dict[str, Any]], headline: dict[str, Any], has_trusted_figures: bool) -> str:
    """The index's leading section: the count, the headline over trusted circuits, Fig. 2 and Fig. 3 beside their
    all-circuit versions, every circuit's checks, and the untrusted circuits' failed checks."""
    circuits = circuit_rows(rows)
    head = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{i['circuits']}</td><td>{i['trusted']}</td>"
        f"<td>{i['common_trusted_tasks']}</td><td>{_value(i['geomean_edges'])}</td>"
        f"<td>{_value(i['all_circuits_geomean_edges'])} ({_value(i['all_circuits_common_tasks'])} tasks)</td></tr>"
        for c, i in headline["checkpoints"].items()
    )
    trusted_ratios = _ratio_lines(headline["dense_over_sparse_edges"]) or ["none (no trusted pair)"]
    all_ratios = _ratio_lines(headline["all_circuits"]["dense_over_sparse_edges"]) or ["none"]
    checks = "".join(
        f"<tr><td>{html.escape(r['checkpoint'])}</td><td>{html.escape(r['task'])}</td><td>{badge_html(r)}</td>"
        + "".join(
            f"<td title='{html.escape(r['checks'][c]['rule'], quote=True)}'>{_check_cell(r, c)}</td>" for c in CHECKS
        )
        + "</tr>"
        for r in circuits
    )
    untrusted = "".join(
        f"<tr><td>{html.escape(r['checkpoint'])}</td><td>{html.escape(r['task'])}</td>"
        f"<td style='text-align:left'>{'<br>'.join(html.escape(d) for d in _failed_detail(r))}"
        + (f"<br><i>{html.escape(EXCEEDS_NOTE)}</i>" if exceeds_model(r) else "")
        + "</td></tr>"
        for r in circuits
        if not is_trusted(r)
    )
    trusted_link = f" (<a href='{TRUSTED_DIR}/index.html'>their figures and tables</a>)" if has_trusted_figures else ""
    all_count = len(circuits)
    return (
        f"<h2>Verdict: {html.escape(_count_text(headline))}</h2>"
        "<p>A circuit is trusted when every check passes; a check whose evidence is absent (controls not run, "
        "a single mask seed) is not measured, and the circuit is not trusted. The headline, Fig. 2 and Fig. 3 "
        f"count trusted circuits only{trusted_link}; the all-circuit versions stand beside them, labelled.</p>"
        "<table><tr><th>checkpoint</th><th>circuits</th><th>trusted</th><th>common trusted tasks</th>"
        "<th>geomean edges (trusted)</th><th>geomean edges (all circuits, not the headline)</th></tr>"
        f"{head}</table>"
        f"<p>Dense / sparse edges over trusted circuits: {html.escape('; '.join(trusted_ratios))}. "
        f"All circuits (not the headline): {html.escape('; '.join(all_ratios))}.</p>"
        + "".join(
            _figure_pair(name, headline["trusted_circuits"], all_count, has_trusted_figures)
            for name in ((FIG2, FIG3) if circuits else ())  # no committed circuit: no figure at all
        )
        + "<h3>Checks per circuit</h3><table><tr><th>checkpoint</th><th>task</th><th>verdict</th>"
        + "".join(f"<th>{c}</th>" for c in CHECKS)
        + f"</tr>{checks}</table>"
        + (
            "<h3>Untrusted circuits and the checks they failed</h3><table><tr><th>checkpoint</th><th>task</th>"
            f"<th>failed checks</th></tr>{untrusted}</table>"
            if untrusted
            else ""
        )
    )


def trusted_index_html(section: str, headline: dict[str, Any]) -> str:
    """trusted/index.html: the figures' section over trusted circuits only."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>sparsepipe: trusted circuits</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>"
        f"<h1>Trusted circuits only ({headline['trusted_circuits']} of {headline['circuits']})</h1>"
        f"<p><a href='../index.html'>back to the report</a></p>{section}</body></html>"
    )


def write_verdict(
    rows: list[dict[str, Any]],
    trusted_geomeans: dict[str, dict[str, Any]],
    all_geomeans: dict[str, dict[str, Any]],
    all_metrics: dict[str, Any],
    out: Path,
    *figure_args: Any,
) -> dict[str, Any]:
    """Writes Fig. 2, Fig. 3 and the binarization figure over trusted circuits only under out/trusted/ (nothing
    without a trusted circuit; `figure_args` go to `write_figures` as for the all-circuit ones); returns the
    verdict headline (`verdict_headline`)."""
    trusted = [row for row in rows if is_trusted(row)]
    metrics: dict[str, Any] = {}
    section = ""
    if trusted:
        (out / TRUSTED_DIR).mkdir()
        metrics, section = write_figures(trusted, out / TRUSTED_DIR, *figure_args)
    headline = verdict_headline(
        rows,
        trusted_geomeans,
        metrics.get("dense_over_sparse_edges", {}),
        all_geomeans,
        all_metrics.get("dense_over_sparse_edges", {}),
    )
    if trusted:
        (out / TRUSTED_DIR / "index.html").write_text(trusted_index_html(section, headline))
    return headline
