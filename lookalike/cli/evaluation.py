"""Commands that measure and show: eval (recall on a benchmark), demo (the sample catalogue end to end)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lookalike.cli.app import (
    app,
    client_for,
    console,
    fail,
    ingest_with_progress,
    print_matches,
    progress_bar,
    row,
)


@app.command("eval")
def evaluate(
    bench: Annotated[Path, typer.Argument(help="gallery/ + gallery.csv, queries/ + ground_truth.csv")],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write metrics here")] = None,
    limit: Annotated[Optional[int], typer.Option(help="only the first N queries")] = None,
    verify: Annotated[str, typer.Option(
        help="stage 2 for every query: auto, off or on (default: the server's)")] = "",
    report_png: Annotated[Path, typer.Option(
        "--report", help="PNG: Recall@K curve + worst misses")] = Path("eval-report.png"),
    server: Annotated[Optional[str], typer.Option(
        help="evaluate against this running service (its collection must hold only the gallery); "
             "default: a fresh embedded service")] = None,
) -> None:
    """Recall@1/5/10 and mAP: ingest the gallery, search every query through the service."""
    from lookalike.tools import evaluate as ev
    from lookalike.tools import report as picture
    from lookalike.tools.catalogue import read_catalogue
    from lookalike.tools.local import local_service

    if verify not in ("", "auto", "off", "on"):
        raise fail(f"--verify is {verify!r}; one of auto, off, on")
    gallery = read_catalogue(bench)

    def run(target: str) -> ev.Report:
        with client_for(target) as client:
            ingest_with_progress(client, gallery)
            queries = len(ev.read_queries(bench, limit))
            with progress_bar() as progress:
                task = progress.add_task("search", total=queries, note="")
                return ev.run(client, bench, limit, lambda: progress.advance(task), verify)

    if server:
        report = run(server)
    else:
        with tempfile.TemporaryDirectory(prefix="lookalike-eval-") as tmp:
            with local_service(Path(tmp)) as target:
                report = run(target)
    summary = report.summary()
    table = Table("category", "queries", "R@1", "R@5", title=f"{bench.name}: per category")
    for category, (n, r1, r5) in report.by_category().items():
        table.add_row(*row(category, n, f"{r1:.3f}", f"{r5:.3f}"))
    console.print(table)
    console.print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in summary.items()))
    if json_out:
        json_out.write_text(json.dumps(summary, indent=2) + "\n")
    picture.write(report, {e.product_id: e.uri for e in gallery}, report_png)
    console.print(escape(f"report: {report_png}"))


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="where the sample catalogue and outputs go")]
    = Path("demo-output"),
) -> None:
    """Generate a sample catalogue, ingest it through the worker, search it over gRPC."""
    import csv

    from lookalike.imaging import decode
    from lookalike.tools import sample
    from lookalike.tools import sheet as sheets
    from lookalike.tools.catalogue import read_catalogue
    from lookalike.tools.local import local_service

    catalogue_csv, truth_csv = sample.generate(workdir / "sample")
    with truth_csv.open() as f:
        queries = [(workdir / "sample" / "queries" / r["query_file"], r["product_id"])
                   for r in csv.DictReader(f)]
    console.print(f"sample catalogue: {catalogue_csv} ({len(sample.PRODUCTS)} products), "
                  f"{len(queries)} store photos")
    console.print("starting the query service with its embedded store and worker ...")
    with local_service(workdir / "data") as target, client_for(target) as client:
        ingest_with_progress(client, read_catalogue(catalogue_csv))
        rows, hits = [], 0
        for path, expected in queries:
            response = client.search(path.read_bytes(), top_k=3)
            hits += bool(response.matches) and response.matches[0].product_id == expected
            rows.append(sheets.query_row(decode(path.read_bytes()), response.matches, expected))
        print_matches(client.search(queries[0][0].read_bytes(), top_k=5),
                       f"Products like {queries[0][0].name} (expected {queries[0][1]})")
    console.print(f"top-1 correct for {hits} of {len(queries)} store photos")
    out = sheets.render(rows, workdir / "contact-sheet.png")
    console.print(f"contact sheet of every query: {out}")
