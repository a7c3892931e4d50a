"""The harness's results: rows judged against their targets, the printed table, the JSON file."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import log


@dataclass
class Row:
    section: str
    name: str
    value: float | None
    unit: str
    ratio: float | None = None
    baseline: str = ""   # what the ratio divides by (or what divides by it)
    target: str = ""     # "<= 1.25", ">= 0.85", "" (for information)
    met: bool | None = None
    n: int | None = None
    note: str = ""

    def judge(self) -> Row:
        m = re.fullmatch(r"\s*(<=|>=)\s*(-?[0-9.]+)\s*", self.target or "")
        if m and self.ratio is not None:
            bound = float(m.group(2))
            self.met = self.ratio <= bound if m.group(1) == "<=" else self.ratio >= bound
        return self


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)

    def add(self, row: Row) -> Row:
        self.rows.append(row.judge())
        r = row
        val = "skipped" if r.value is None else f"{r.value:,.4g} {r.unit}"
        ratio = "" if r.ratio is None else f" ratio {r.ratio:.3g}"
        verdict = "" if r.met is None else (" MET" if r.met else " NOT MET")
        log(f"  {r.section} | {r.name}: {val}{ratio}{(' target ' + r.target) if r.target else ''}"
            f"{verdict}{(' — ' + r.note) if r.value is None and r.note else ''}")
        return row

    def skip(self, section: str, name: str, reason: str, target: str = "") -> None:
        self.add(Row(section, name, None, "", target=target, note=f"SKIPPED: {reason}"))



def print_table(res: Results) -> None:
    head = ["section", "measurement", "value", "ratio", "ratio is", "target", "met", "n"]
    body = []
    for r in res.rows:
        body.append([
            r.section, r.name,
            "skipped" if r.value is None else f"{r.value:,.4g} {r.unit}".strip(),
            "" if r.ratio is None else f"{r.ratio:.3g}",
            r.baseline, r.target or "info",
            "" if r.met is None else ("yes" if r.met else "NO"),
            "" if r.n is None else str(r.n),
        ])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    line = "  ".join("-" * w for w in widths)
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print(line)
    for b in body:
        print("  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip())
    print(line)
    notes = [(i, r) for i, r in enumerate(res.rows, 1) if r.note]
    if notes:
        print("notes:")
        for _, r in notes:
            print(f"  - {r.section} / {r.name}: {r.note}")
    met = [r for r in res.rows if r.met is not None]
    print(f"targets met: {sum(r.met for r in met)} of {len(met)}")



def write_json(res: Results, path: str, partial: bool = False) -> None:
    details = dict(res.details)
    out = {"meta": {**details.pop("meta", {}), "partial": partial}, "baselines": res.baselines,
           "rows": [asdict(r) for r in res.rows], "details": details}
    Path(path).write_text(json.dumps(out, indent=1, default=str))

