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
    require_benchmarks,
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
    require_benchmarks([bench])
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


@app.command("eval-objects")
def evaluate_objects(
    bench: Annotated[Path, typer.Argument(
        help="scenes folder: evaluated as is when it holds scenes.json, else generated there "
             "from --from")],
    sources: Annotated[Optional[list[Path]], typer.Option(
        "--from", help="catalogue to build scenes from (benchmark folder, CSV or folder of "
                       "product folders); repeat for several")] = None,
    per_kind: Annotated[int, typer.Option(help="scenes per kind (printed, produce)")] = 60,
    seed: Annotated[int, typer.Option(help="scene generator seed")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write metrics here")] = None,
    sheet: Annotated[Optional[Path], typer.Option(
        help="PNG of 6 scenes with what was found (default: BENCH/objects-sheet.png)")] = None,
    server: Annotated[Optional[str], typer.Option(
        help="evaluate against this running service (its collection must hold only the scenes' "
             "catalogue); default: a fresh embedded service")] = None,
) -> None:
    """Per-object search on multi-product scenes: precision and recall of the products found
    (right product, outline IoU >= 0.5), per kind, and the server time per scene."""
    from lookalike.imaging import decode
    from lookalike.tools import evaluate_objects as eo
    from lookalike.tools import scenes
    from lookalike.tools import sheet as sheets
    from lookalike.tools.catalogue import read_catalogue
    from lookalike.tools.local import local_service

    truth_file = bench / "scenes.json"
    if sources:
        missing = [str(s) for s in sources if not s.exists()]
        if missing:
            raise fail(f"no catalogue at {', '.join(missing)}")
        wanted = {"sources": [str(s.resolve()) for s in sources], "seed": seed, "per_kind": per_kind}
        old = json.loads(truth_file.read_text()) if truth_file.is_file() else {}
        if {k: old.get(k) for k in wanted} != wanted:
            console.print(escape(f"generating {per_kind} scenes per kind in {bench} ..."))
            try:
                scenes.generate(sources, bench, per_kind, seed)
            except ValueError as exc:
                raise fail(str(exc)) from None
    elif not truth_file.is_file():
        raise fail(f"{bench} holds no scenes.json: give --from CATALOGUE to generate scenes there")
    catalogue = read_catalogue(bench / "catalogue.csv")
    count = len(json.loads(truth_file.read_text())["scenes"])

    def run(target: str) -> tuple[list[eo.SceneResult], str]:
        with client_for(target) as client:
            ingest_with_progress(client, catalogue)
            with progress_bar() as progress:
                task = progress.add_task("scenes", total=count, note="")
                return eo.run(client, bench, lambda: progress.advance(task))

    if server:
        results, model = run(server)
    else:
        with tempfile.TemporaryDirectory(prefix="lookalike-eval-") as tmp:
            with local_service(Path(tmp)) as target:
                results, model = run(target)
    summary = eo.summary(results, model)
    table = Table("kind", "scenes", "products", "found", "precision", "recall", "server ms p50",
                  title=f"{bench.name}: per-object search (a hit: right product, IoU >= {eo.HIT_IOU})")
    for kind in ("printed", "produce"):
        if kind in summary:
            k = summary[kind]
            table.add_row(*row(kind, k["scenes"], k["objects"], k["found"], f"{k['precision']:.3f}",
                               f"{k['recall']:.3f}", f"{k['server_ms_p50']:.0f}"))
    console.print(table)
    console.print(f"model {model}; server ms per scene p50 {summary['server_ms_p50']:.0f}, "
                  f"p99 {summary['server_ms_p99']:.0f}")
    if json_out:
        json_out.write_text(json.dumps(summary, indent=2) + "\n")
    by_kind = {kind: [r for r in results if r.kind == kind] for kind in ("printed", "produce")}
    shown = by_kind["printed"][:3] + by_kind["produce"][:3] if by_kind["produce"] else \
        by_kind["printed"][:6]
    if shown:
        out = sheets.grid([sheets.scene_picture(decode((bench / r.file).read_bytes(),
                                                       target_side=4096), r.found, r.hits, r.truth)
                           for r in shown], sheet or bench / "objects-sheet.png")
        console.print(escape(f"sheet: {out}"))


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
