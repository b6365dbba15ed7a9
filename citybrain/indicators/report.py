"""The evaluation report: one self-contained HTML page (inline SVG charts, no network) a city leader reads."""

from __future__ import annotations

from html import escape
from typing import Any

from citybrain.indicators.spec import DIMENSIONS

CSS = """
body{font-family:"Noto Sans CJK SC","Noto Sans SC","Microsoft YaHei",sans-serif;margin:24px;color:#1d2733}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px;border-bottom:2px solid #2f6fb0}
.meta{color:#5a6775;font-size:12px}.big{font-size:44px;font-weight:700;color:#2f6fb0}
table{border-collapse:collapse;width:100%;font-size:12px;margin-bottom:8px}
th,td{border:1px solid #d4dbe3;padding:4px 6px;text-align:left;vertical-align:top}th{background:#eef3f8}
td.n{text-align:right;white-space:nowrap}.nd{color:#a0522d}.up{color:#1b7f3b}.down{color:#b3261e}
.row{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}.small{font-size:11px;color:#5a6775}
@media print{h2{break-after:avoid}table{break-inside:auto}tr{break-inside:avoid}}
"""


def fmt(value: float | None, unit: str = "") -> str:
    """Format a value for the tables ("no data" for None)."""
    if value is None:
        return "—"
    text = f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def bars(items: list[tuple[str, float | None]], width: int = 420, height: int = 22, top: float = 100) -> str:
    """Return a horizontal bar chart as inline SVG (label, value 0..top; None drawn as 'no data')."""
    h = height * len(items) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img">']
    for i, (label, value) in enumerate(items):
        y = 5 + i * height
        out.append(f'<text x="0" y="{y + 15}" font-size="12">{escape(label)}</text>')
        if value is None:
            out.append(f'<text x="170" y="{y + 15}" font-size="11" fill="#a0522d">no data 无数据</text>')
            continue
        w = max(1.0, (width - 220) * max(0.0, min(value, top)) / top)
        colour = "#1b7f3b" if value >= 0.8 * top else "#d9a400" if value >= 0.6 * top else "#b3261e"
        out.append(f'<rect x="170" y="{y + 3}" width="{w:.1f}" height="{height - 8}" fill="{colour}"/>')
        out.append(f'<text x="{175 + w:.1f}" y="{y + 15}" font-size="11">{value:.1f}</text>')
    out.append("</svg>")
    return "".join(out)


def line(points: list[tuple[str, float | None]], width: int = 420, height: int = 160) -> str:
    """Return a line chart of the total score over periods as inline SVG (0-100)."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
           f'<rect x="40" y="10" width="{width - 50}" height="{height - 40}" fill="#f7f9fb" stroke="#d4dbe3"/>']
    for v in (0, 50, 100):
        y = 10 + (height - 40) * (1 - v / 100)
        out.append(f'<text x="4" y="{y + 4:.1f}" font-size="10">{v}</text>')
    step = (width - 70) / max(1, len(points) - 1)
    xy = []
    for i, (label, value) in enumerate(points):
        x = 50 + i * step
        out.append(f'<text x="{x - 20:.1f}" y="{height - 14}" font-size="9">{escape(label)}</text>')
        if value is not None:
            y = 10 + (height - 40) * (1 - value / 100)
            xy.append(f"{x:.1f},{y:.1f}")
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#2f6fb0"/>'
                       f'<text x="{x + 5:.1f}" y="{y - 6:.1f}" font-size="10">{value:.1f}</text>')
    if len(xy) > 1:
        out.append(f'<polyline points="{" ".join(xy)}" fill="none" stroke="#2f6fb0" stroke-width="2"/>')
    out.append("</svg>")
    return "".join(out)


def moved(row: dict[str, Any]) -> str:
    """Describe the change since the previous period, coloured by whether it is better or worse."""
    change = row.get("change")
    if change is None:
        return '<span class="small">—</span>'
    if change == 0:
        return "="
    better = (change > 0) == (row["direction"] == "higher")
    return f'<span class="{"up" if better else "down"}">{"▲" if change > 0 else "▼"} {fmt(abs(change))}</span>'


def table(rows: list[dict[str, Any]]) -> str:
    """Return the table of one dimension's indicators."""
    head = ("<tr><th>指标 Indicator</th><th>值 Value</th><th>目标 Target</th><th>得分 Score</th><th>权重 Weight</th>"
            "<th>较上期 Change</th><th>依据 Standard / clause</th></tr>")
    body = []
    for r in rows:
        value = fmt(r["value"], r["unit"]) if r["no_data"] is None else f'<span class="nd">{escape(r["no_data"])}</span>'
        target = ("≥ " if r["direction"] == "higher" else "≤ ") + fmt(r["target"], r["unit"])
        score = "—" if r["score"] is None else f'{100 * r["score"]:.0f}'
        body.append(f'<tr><td>{escape(r["name"]["zh"])}<br><span class="small">{escape(r["name"]["en"])} · '
                    f'<code>{escape(r["formula"])}</code></span></td><td class="n">{value}</td>'
                    f'<td class="n">{escape(target)}</td><td class="n">{score}</td><td class="n">{fmt(r["weight"])}</td>'
                    f'<td class="n">{moved(r)}</td><td>{escape(r["standard"])}<br>'
                    f'<span class="small">{escape(r["clause"])}</span></td></tr>')
    return f"<table>{head}{''.join(body)}</table>"


def render_html(result: dict[str, Any], area_name: str | None = None) -> str:
    """Return the whole report as one HTML document."""
    rows = result["indicators"]
    area = escape(area_name or result.get("area") or "city")
    dims = result["dimensions"]
    parts = [f"<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>城市大脑长效运行评价 "
             f"{area}</title><style>{CSS}</style></head><body>",
             "<h1>城市大脑长效运行评价报告 · City brain operation evaluation</h1>",
             f'<div class="meta">区域 Area: {area} · 期间 Period: {escape(result["from"])} — {escape(result["to"])}'
             f' · 生成 Generated: {escape(result.get("generated_at", ""))}</div>',
             '<div class="row"><div><h2>总分 Total score</h2>'
             f'<div class="big">{fmt(result["score"])}</div><div class="small">of 100 · indicators with data carry '
             f'{100 * result["coverage"]:.0f}% of the weight; {result["no_data"]} without data</div></div>',
             "<div><h2>维度得分 Dimension scores</h2>"
             + bars([(f'{d["name"]["zh"]} {d["name"]["en"]}', d["score"]) for d in dims.values()]) + "</div>"]
    trend = [(p["from"][:10], p["score"]) for p in result.get("periods", [])]
    if len(trend) > 1:
        parts.append("<div><h2>趋势 Trend (total score by period)</h2>" + line(trend) + "</div>")
    parts.append("</div>")
    changed = [r for r in rows if r.get("change")]
    parts.append("<h2>较上期变化 What moved since the previous period</h2>")
    if result.get("previous"):
        parts.append(f'<div class="small">previous period {escape(result["previous"]["from"])} — '
                     f'{escape(result["previous"]["to"])}: total {fmt(result["previous"]["score"])}</div>')
    parts.append("<ul>" + "".join(f'<li>{escape(r["name"]["zh"])} {escape(r["name"]["en"])}: {fmt(r["previous"])}'
                                  f' → {fmt(r["value"], r["unit"])} {moved(r)}</li>' for r in changed)
                 + "</ul>" if changed else '<div class="small">no indicator changed (or no previous data)</div>')
    for key, (zh, en) in DIMENSIONS.items():
        mine = [r for r in rows if r["dimension"] == key]
        if mine:
            parts.append(f"<h2>{zh} {en} — {fmt(dims[key]['score'])}</h2>" + table(mine))
    if result.get("areas"):
        parts.append("<h2>区域对比 Comparison between areas</h2>"
                     + bars([(str(a["name"])[:24], a["score"]) for a in result["areas"]], width=520))
    parts.append('<p class="small">Scores: value/target (higher is better) or target/value (lower is better), '
                 "clipped to [0, 1], weighted, normalised to 100 over indicators with data. Indicator file: "
                 f'{escape(str(result.get("source", "")))}.</p></body></html>')
    return "".join(parts)
