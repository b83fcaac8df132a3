"""The report as a printable web page: bilingual headings, escaped values, no scripts."""

from __future__ import annotations

import html
from typing import Any

from maintenance.reports import names


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e('' if c is None else str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body or '<tr><td>-</td></tr>'}</tbody></table>"


def to_html(report: dict[str, Any], site_name: str) -> str:
    """A printable page of the report; the PDF (`?format=pdf`) is the archived form."""
    e = html.escape
    keys = list(names.COUNTS)
    kinds = [[names.both(names.kind_name(k))] + [c.get(x, 0) for x in keys]
             for k, c in (report.get("tasks_by_kind") or {}).items()]
    sla = [[names.both(label)] + [(report.get("sla") or {}).get(clock, {}).get(f) for f in names.SLA_FIELDS]
           for clock, label in names.CLOCKS.items()]
    rot = report.get("rotation") or {}
    status = names.STATUS["closed" if report.get("status") == "closed" else "preview"]
    signed = report.get("signatures") or {}
    lines = [[names.both(title), (signed.get(key) or {}).get("name") or "________",
              ((signed.get(key) or {}).get("at") or "")[:10]]
             for key, title in (("prepared", names.PREPARED), ("approved", names.APPROVED))]
    return f"""<!doctype html>
<html lang="zh-Hans"><head><meta charset="utf-8"><title>{e(site_name)} {e(report['month'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #444;padding:4px 8px;text-align:left}}@media print{{body{{margin:0}}}}</style>
</head><body>
<h1>{e(site_name)} {names.TITLE.zh} {names.TITLE.en} {e(report['month'])}</h1>
<p>{status.zh} {status.en} · 截止 Due by {e(str(report.get('due_by', ''))[:10])}</p>
<h2>任务 Tasks</h2>{_table(['类型 Kind'] + [names.both(names.COUNTS[k]) for k in keys], kinds)}
<h2>时效 Response and resolution</h2>{_table([''] + [names.both(t) for t in names.SLA_FIELDS.values()], sla)}
<h2>重复故障 Repeat faults</h2>{_table(['设备 Asset', '故障 Faults', '重复 Repeats'],
                                      [[r['asset'], r['faults'], r['repeats']]
                                       for r in report.get('repeat_faults') or []])}
<h2>轮换 Duty rotation</h2>{_table([names.both(t) for t in names.ROTATION.values()],
                                  [[rot.get(k) for k in names.ROTATION]])}
<h2>备件 Parts used</h2>{_table(['备件 Part', '单位 Unit', '数量 Quantity'],
                               [[p['part'], p['unit'], p['quantity']]
                                for p in report.get('parts_used') or []])}
<h2>更正记录 Amendments</h2>{_table(['时间 When', '更正 What', '原因 Why', '计入 Counted in'],
                                   [[a['happened_at'][:16], a['what']['zh'] + ' / ' + a['what']['en'],
                                     a['why'], a['counted_in']] for a in report.get('amendments') or []])}
<h2>签字 Signatures</h2>{_table(['', '姓名 Name', '日期 Date'], lines)}
</body></html>
"""
