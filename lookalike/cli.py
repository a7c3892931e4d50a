"""The `lookalike` command line: serve, worker, ingest, search, stats, delete, eval, demo."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import grpc
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from lookalike.config import get_settings

app = typer.Typer(help="lookalike: find the catalogue products that look like a photo.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console()
ServerOpt = Annotated[Optional[str], typer.Option("--server", "-s",
                      help="query service address [env LOOKALIKE_SERVER]")]


def _row(*cells: object) -> list[Text]:
    """Table cells as plain text: product ids and titles are data, never Rich markup."""
    return [Text(str(cell)) for cell in cells]


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]{escape(message)}[/]")
    return typer.Exit(code)


def _client(server: str | None):
    from lookalike.client import Client

    settings = get_settings()
    return Client(server or settings.server, api_key=settings.api_key, tls=settings.tls,
                  tls_ca=settings.tls_ca)


def _logging() -> None:
    from lookalike.observability import setup_logging

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)


@app.command()
def serve(
    all_in_one: Annotated[Optional[bool], typer.Option(
        "--all-in-one/--query-only",
        help="also run the ingest worker in this process (default: when the store is embedded)",
    )] = None,
) -> None:
    """Run the gRPC query service (with the embedded store: worker included)."""
    from lookalike.config import ConfigError
    from lookalike.lock import StoreLocked
    from lookalike.server import serve as run

    _logging()
    try:
        run(all_in_one)
    except (ConfigError, StoreLocked) as exc:
        raise _fail(str(exc)) from None


@app.command()
def worker() -> None:
    """Run a Celery ingest worker (needs QDRANT_URL: an embedded store has one owner)."""
    settings = get_settings()
    if settings.embedded:
        console.print("[red]The embedded store can be opened by one process only: "
                      "run `lookalike serve` (worker included) or set QDRANT_URL.[/]")
        raise typer.Exit(2)
    from lookalike.worker import run_worker

    _logging()
    run_worker(metrics=True)


@app.command("worker-health")
def worker_health(
    timeout_s: Annotated[float, typer.Option(help="how long to wait for the answer")] = 20.0,
) -> None:
    """Exit 0 when this host's Celery worker answers a ping over Redis (container probes)."""
    import socket

    from celery import Celery

    node = f"celery@{socket.gethostname()}"
    answer = Celery(broker=get_settings().redis_dsn).control.ping(destination=[node],
                                                                  timeout=timeout_s)
    console.print(f"{node} {'answers' if answer else 'does not answer'}")
    raise typer.Exit(0 if answer else 1)


@app.command()
def warmup() -> None:
    """Convert and cache the model weights (e.g. while building an image)."""
    from lookalike.embedding import Embedder

    embedder = Embedder(get_settings().model)
    embedder.warmup()
    console.print(f"model {embedder.model_id} ready ({embedder.dim}-d)")


@app.command()
def health(server: ServerOpt = None) -> None:
    """Exit 0 when the query service answers SERVING."""
    with _client(server) as client:
        ok = client.healthy()
    console.print("SERVING" if ok else "NOT SERVING")
    raise typer.Exit(0 if ok else 1)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=console)


def _ingest(client, entries, stall_s: float | None = None):
    from lookalike import bulk

    with _progress() as progress:
        task = progress.add_task("ingest", total=len(entries), note="")

        def update(total: int, done: int, failed: int) -> None:
            progress.update(task, total=total, completed=done + failed,
                            note=f"{done} stored, {failed} failed")

        try:
            outcome = bulk.ingest(client, entries, update, stall_s=stall_s or bulk.STALL_S)
        except bulk.IngestStalled as exc:
            raise _fail(str(exc), 3) from None
    failures = outcome.failures
    console.print(f"[green]{outcome.done} stored[/], [{'red' if failures else 'green'}]"
                  f"{len(failures)} failed[/] (jobs: {', '.join(j.job_id for j in outcome.jobs)})")
    if failures:
        table = Table("product", "image", "reason", title="Failed items")
        for f in failures:
            table.add_row(*_row(f.product_id, f.image_id, f.reason))
        console.print(table)
    return outcome


@app.command()
def ingest(
    catalogue: Annotated[Path, typer.Argument(help="CSV, benchmark folder (gallery.csv), "
                                              "or folder of product folders")],
    server: ServerOpt = None,
    stall_timeout: Annotated[float, typer.Option(
        help="give up waiting when no image was processed for this many seconds")] = 300.0,
) -> None:
    """Load catalogue images into the service, with a live progress bar."""
    from lookalike.catalogue import read_catalogue

    entries = read_catalogue(catalogue)
    console.print(escape(f"{len(entries)} images of {len({e.product_id for e in entries})} "
                         f"products from {catalogue}"))
    with _client(server) as client:
        outcome = _ingest(client, entries, stall_timeout)
    raise typer.Exit(1 if outcome.failures else 0)


def _print_matches(response, title: str) -> None:
    table = Table("#", "product", "score", "category", "title", "image", title=escape(title))
    for rank, m in enumerate(response.matches, start=1):
        table.add_row(*_row(rank, m.product_id, f"{m.score:.3f}", m.category, m.title, m.image_id))
    console.print(table)
    console.print(escape(f"model {response.model}, {response.server_ms:.1f} ms in the server"))


@app.command()
def search(
    image: Annotated[Path, typer.Argument(help="photo to look up")],
    top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5,
    category: Annotated[Optional[list[str]], typer.Option(help="only these categories")] = None,
    label: Annotated[Optional[list[str]], typer.Option(help="only products with these labels")] = None,
    min_score: Annotated[float, typer.Option(help="drop matches below this cosine score")] = 0.0,
    sheet: Annotated[Optional[Path], typer.Option(help="write a contact sheet PNG here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    server: ServerOpt = None,
) -> None:
    """Print the products that look like IMAGE, best first."""
    data = image.read_bytes()
    with _client(server) as client:
        try:
            response = client.search(data, top_k, category or (), label or (), min_score)
        except grpc.RpcError as exc:
            raise _fail(f"{exc.code().name}: {exc.details()}", 1) from None
    if as_json:
        from google.protobuf.json_format import MessageToDict

        print(json.dumps(MessageToDict(response), indent=2))
    else:
        _print_matches(response, f"Products like {image.name}")
    if sheet:
        from lookalike import sheet as sheets
        from lookalike.imaging import decode

        sheets.render([sheets.query_row(decode(data), response.matches)], sheet)
        console.print(escape(f"contact sheet: {sheet}"))


@app.command()
def stats(server: ServerOpt = None) -> None:
    """Catalogue size and the model that embedded it."""
    with _client(server) as client:
        s = client.stats()
    console.print(escape(f"collection {s.collection}: {s.points} images of {s.products} "
                         f"products, model {s.model_name}@{s.model_version} ({s.vector_size}-d)"))


@app.command()
def delete(product_ids: Annotated[list[str], typer.Argument()], server: ServerOpt = None) -> None:
    """Remove every image of the given products."""
    with _client(server) as client:
        console.print(f"deleted {client.delete(product_ids)} images")


@app.command(add_help_option=False,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(ctx: typer.Context) -> None:
    """Fine-tune the embedder on labelled product photos (`lookalike train --help`)."""
    from lookalike.train import main

    main(ctx.args)


@app.command()
def reindex(
    model: Annotated[str, typer.Option(help="the model to rebuild the catalogue with")],
    force: Annotated[bool, typer.Option(
        help="make it live even if some images could not be re-read")] = False,
) -> None:
    """Rebuild the catalogue for another model, then switch the catalogue alias to it.

    With a Qdrant server, search stays up: services on the old model keep using the
    old collection until restarted with LOOKALIKE_MODEL set to the new one. With the
    embedded store, stop `lookalike serve` first (one process owns the store).
    """
    from lookalike import runtime
    from lookalike.lock import StoreLocked
    from lookalike.reindex import reindex as run

    settings = get_settings()
    try:
        with _progress() as progress:
            task = progress.add_task("reindex", total=None, note="")
            report = run(settings, model, runtime.jobs(),
                         lambda done, total: progress.update(task, completed=done, total=total),
                         force=force)
    except StoreLocked as exc:
        raise _fail(str(exc)) from None
    for f in report.failures:
        console.print(f"[red]failed[/] {escape(f'{f.product_id}/{f.image_id}: {f.reason}')}")
    console.print(f"{report.stored} of {report.images} images re-embedded into "
                  f"{report.target_collection} (from {report.source_collection}); "
                  + ("now live" if report.promoted else "[yellow]not made live[/]"))
    raise typer.Exit(0 if report.promoted else 1)


@app.command()
def optimize() -> None:
    """Build the embedded store's search index (HNSW) now, e.g. after a bulk load offline.

    `lookalike serve` builds it by itself (LOOKALIKE_INDEX_CHECK_S), so stop the service
    first: the embedded store has one owner. Exact search is fast enough to about 20k
    images; past that the index keeps search at a few milliseconds.
    """
    import time

    from lookalike.embedding import model_id

    settings = get_settings()
    if not settings.embedded:
        console.print("A Qdrant server builds its indexes itself: nothing to do.")
        return
    from lookalike.lock import StoreLocked
    from lookalike.store import CatalogueStore, ModelMismatch, open_client

    try:
        client = open_client(settings)
    except StoreLocked as exc:
        raise _fail(str(exc)) from None
    store = CatalogueStore(client, settings.collection, model_id(settings.model), dim=0)
    if not store.live_model():
        store.close()
        raise _fail(f"No catalogue {settings.collection!r} in {settings.data_dir}: "
                    "nothing to index.", 1)
    started = time.perf_counter()
    try:
        points = store.count()
    except ModelMismatch as exc:
        store.close()
        raise _fail(str(exc), 1) from None
    console.print(f"indexing {points:,} vectors of {store.collection} (a minute or so per 100k)")
    with console.status("indexing ..."):
        changed = store.optimize()
    store.close()
    console.print(f"{'indexed' if changed else 'already optimal'} in "
                  f"{time.perf_counter() - started:.0f} s")


@app.command("eval")
def evaluate(
    bench: Annotated[Path, typer.Argument(help="gallery/ + gallery.csv, queries/ + ground_truth.csv")],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write metrics here")] = None,
    limit: Annotated[Optional[int], typer.Option(help="only the first N queries")] = None,
    report_png: Annotated[Path, typer.Option(
        "--report", help="PNG: Recall@K curve + worst misses")] = Path("eval-report.png"),
    server: Annotated[Optional[str], typer.Option(
        help="evaluate against this running service (its collection must hold only the gallery); "
             "default: a fresh embedded service")] = None,
) -> None:
    """Recall@1/5/10 and mAP: ingest the gallery, search every query through the service."""
    from lookalike import evaluate as ev
    from lookalike import report as picture
    from lookalike.catalogue import read_catalogue
    from lookalike.local import local_service

    gallery = read_catalogue(bench)

    def run(target: str) -> ev.Report:
        with _client(target) as client:
            _ingest(client, gallery)
            queries = len(ev.read_queries(bench, limit))
            with _progress() as progress:
                task = progress.add_task("search", total=queries, note="")
                return ev.run(client, bench, limit, lambda: progress.advance(task))

    if server:
        report = run(server)
    else:
        with tempfile.TemporaryDirectory(prefix="lookalike-eval-") as tmp:
            with local_service(Path(tmp)) as target:
                report = run(target)
    summary = report.summary()
    table = Table("category", "queries", "R@1", "R@5", title=f"{bench.name}: per category")
    for category, (n, r1, r5) in report.by_category().items():
        table.add_row(*_row(category, n, f"{r1:.3f}", f"{r5:.3f}"))
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

    from lookalike import sample
    from lookalike import sheet as sheets
    from lookalike.catalogue import read_catalogue
    from lookalike.imaging import decode
    from lookalike.local import local_service

    catalogue_csv, truth_csv = sample.generate(workdir / "sample")
    with truth_csv.open() as f:
        queries = [(workdir / "sample" / "queries" / r["query_file"], r["product_id"])
                   for r in csv.DictReader(f)]
    console.print(f"sample catalogue: {catalogue_csv} ({len(sample.PRODUCTS)} products), "
                  f"{len(queries)} store photos")
    console.print("starting the query service with its embedded store and worker ...")
    with local_service(workdir / "data") as target, _client(target) as client:
        _ingest(client, read_catalogue(catalogue_csv))
        rows, hits = [], 0
        for path, expected in queries:
            response = client.search(path.read_bytes(), top_k=3)
            hits += bool(response.matches) and response.matches[0].product_id == expected
            rows.append(sheets.query_row(decode(path.read_bytes()), response.matches, expected))
        _print_matches(client.search(queries[0][0].read_bytes(), top_k=5),
                       f"Products like {queries[0][0].name} (expected {queries[0][1]})")
    console.print(f"top-1 correct for {hits} of {len(queries)} store photos")
    out = sheets.render(rows, workdir / "contact-sheet.png")
    console.print(f"contact sheet of every query: {out}")


if __name__ == "__main__":
    sys.exit(app())
