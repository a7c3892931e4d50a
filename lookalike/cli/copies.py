"""Copy detection: copy-check (one image) and eval-copies (the benchmark, docs/copies.md)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lookalike.cli.app import (
    ServerOpt,
    SetOpt,
    app,
    client_for,
    console,
    ingest_with_progress,
    progress_bar,
    read_photo,
    require_benchmarks,
    row,
    to_json,
)


@app.command("copy-check")
def copy_check(
    photo: Annotated[str, typer.Argument(help="image file or http(s) URL")],
    product_set: SetOpt = "",
    as_json: Annotated[bool, typer.Option("--json", help="print the answer as JSON")] = False,
    server: ServerOpt = None,
) -> None:
    """Is this image a copy of a catalogue image (cropped, resized, recompressed, turned,
    mirrored, recoloured, written over, screenshotted)? One line; exit 0 either way."""
    data, _ = read_photo(photo)
    with client_for(server) as client:
        r = client.detect_copy(data, product_set)
    if as_json:
        print(to_json(r, indent=None))
        return
    o = r.original
    if r.is_copy:
        console.print(escape(f"copy of {o.product_id}/{o.image_id} (confidence {r.confidence:.2f}, "
                             f"{r.inliers} inliers, covers {100 * r.coverage:.0f} % of it)"))
    elif o.product_id:
        console.print(escape(f"not a copy (closest: {o.product_id}/{o.image_id}, confidence "
                             f"{r.confidence:.2f}, {r.inliers} inliers)"))
    else:
        console.print("not a copy (no catalogue image to compare with)")


@app.command("eval-copies")
def evaluate_copies(
    datasets: Annotated[list[Path], typer.Argument(
        help="benchmark folders: gallery/ + gallery.csv, queries/ + ground_truth.csv")],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write metrics here")] = None,
    seed: Annotated[int, typer.Option(help="edit generator seed")] = 0,
    photos: Annotated[int, typer.Option(
        min=0, help="at most this many query photos per dataset (a seeded sample; 0: all)")] = 0,
    out: Annotated[Optional[Path], typer.Option(
        help="where the edited images go (default: a temporary folder, removed after)")] = None,
    server: Annotated[Optional[str], typer.Option(
        help="evaluate against this running service (each dataset is ingested into a product "
             "set named after its folder); default: a fresh embedded service")] = None,
) -> None:
    """Copy detection: edited catalogue images (every edit kind, 3 levels, fixed seed) must be
    copies of their original; the datasets' photos must not. Precision, recall per edit kind,
    photos of the same / other products apart, DetectCopy's server time."""
    from lookalike.tools import copies as bench
    from lookalike.tools.catalogue import read_catalogue
    from lookalike.tools.local import local_service

    require_benchmarks(datasets)
    sets = {d.name: d.name for d in datasets}
    catalogue = [e for d in datasets for e in read_catalogue(d, product_set=sets[d.name])]

    def run(target: str, folder: Path) -> list[bench.Outcome]:
        console.print(escape(f"generating edits in {folder} ..."))
        cases = bench.generate(datasets, folder, seed, photos)
        with client_for(target) as client:
            ingest_with_progress(client, catalogue)
            with progress_bar() as progress:
                task = progress.add_task("detect", total=len(cases), note="")
                return bench.run(client, folder, cases, sets, lambda: progress.advance(task))

    with tempfile.TemporaryDirectory(prefix="lookalike-copies-") as tmp:
        folder = out or Path(tmp) / "edits"
        if server:
            results = run(server, folder)
        else:
            with local_service(Path(tmp) / "service") as target:
                results = run(target, folder)
    summary = bench.summary(results)
    table = Table("dataset", "edit", "copies", "recall", "by level", title="Copies found (right original)")
    for name in sorted(sets):
        for kind, k in summary[name]["by_kind"].items():
            table.add_row(*row(name, kind, k["n"], f"{k['recall']:.3f}",
                               " / ".join(f"{v:.2f}" for v in k["levels"])))
    console.print(table)
    for name in [*sorted(sets), "all"]:
        s = summary[name]
        console.print(escape(
            f"{name}: recall {s['recall']:.3f} ({s['positives']} copies, {s['wrong_original']} "
            f"wrong original); photos of other products called copies {s['false_copies_other']} "
            f"of {s['negatives_other']}; photos of the same product {s['copies_same']} of "
            f"{s['negatives_same']}; precision {s['precision']:.4f} (both as negatives), "
            f"{s['precision_other_only']:.4f} (other products only)"))
    console.print(f"server ms p50 {summary['server_ms_p50']:.0f}, p99 {summary['server_ms_p99']:.0f}")
    if json_out:
        from dataclasses import asdict

        records = [{"case": asdict(r.case), **{k: v for k, v in asdict(r).items() if k != "case"}}
                   for r in results]
        json_out.write_text(json.dumps({**summary, "records": records}, indent=2) + "\n")
