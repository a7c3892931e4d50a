"""Commands that run or maintain the service: serve, worker, worker-health, warmup, train,
shrink-model, quantize-model, reindex, optimize."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from lookalike.cli.app import (
    ExitCode,
    app,
    console,
    fail,
    progress_bar,
)
from lookalike.config import get_settings


@app.command()
def serve(
    all_in_one: Annotated[Optional[bool], typer.Option(
        "--all-in-one/--query-only",
        help="also run the ingest worker in this process (default: when the store is embedded)",
    )] = None,
) -> None:
    """Run the gRPC query service (with the embedded store: worker included), and the HTTP
    gateway with the web page beside it when LOOKALIKE_HTTP_LISTEN is set."""
    from lookalike.config import ConfigError
    from lookalike.store import ModelMismatch, StoreLocked

    all_in_one = get_settings().embedded if all_in_one is None else all_in_one
    if all_in_one:
        from lookalike_services.embedded import main
    else:
        from lookalike_services.query.main import main
    gateway = None
    try:
        if get_settings().http_listen:  # uvicorn in a thread; /healthz says when gRPC serves
            from lookalike.web.runner import beside_grpc

            gateway = beside_grpc(get_settings())
            console.print(f"web page and HTTP API: http://{gateway.address}/", highlight=False)
        main()
    except ConfigError as exc:
        raise fail(str(exc), ExitCode.USAGE) from None
    except (StoreLocked, ModelMismatch) as exc:  # names the holder / the model to set
        raise fail(str(exc), ExitCode.REFUSED) from None
    finally:
        if gateway:
            gateway.stop()


@app.command()
def worker() -> None:
    """Run a Celery ingest worker (needs QDRANT_URL: an embedded store has one owner)."""
    if get_settings().embedded:
        console.print("[red]The embedded store can be opened by one process only: "
                      "run `lookalike serve` (worker included) or set QDRANT_URL.[/]")
        raise typer.Exit(ExitCode.USAGE)
    from lookalike_services.worker.main import main

    from lookalike.config import ConfigError
    from lookalike.store import ModelMismatch

    try:
        main()
    except ConfigError as exc:
        raise fail(str(exc), ExitCode.USAGE) from None
    except ModelMismatch as exc:  # the catalogue is live on another model: names it
        raise fail(str(exc), ExitCode.REFUSED) from None


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
    raise typer.Exit(ExitCode.OK if answer else ExitCode.FAILED)


@app.command()
def warmup() -> None:
    """Convert and cache the model weights (e.g. while building an image)."""
    from lookalike.model import load_model

    embedder = load_model(get_settings().model)
    embedder.warmup()
    console.print(f"model {embedder.model_id} ready ({embedder.dim}-d)")


@app.command(add_help_option=False,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(ctx: typer.Context) -> None:
    """Fine-tune the embedder on labelled product photos (`lookalike train --help`)."""
    from lookalike.training.cli import main

    main(ctx.args)


@app.command(name="shrink-model")
def shrink_model(
    source: Annotated[Path, typer.Argument(help="the trained model's artifact (path stem or .npz)")],
    data: Annotated[Path, typer.Argument(help="its training data: a benchmark folder or a folder "
                                              "per product")],
    out: Annotated[Path, typer.Argument(help="artifact path stem: writes OUT.npz and OUT.json")],
    dim: Annotated[int, typer.Option(help="dimensions kept", min=1)] = 640,
) -> None:
    """Project a trained model's vectors to fewer dimensions: a smaller stored vector per image."""
    stem = _trained_artifact(source, data)
    from lookalike.training.data import load_dataset
    from lookalike.training.projection import shrink

    try:
        shrink(stem, load_dataset(data), out, dim, log=console.print)
    except ValueError as exc:
        raise fail(str(exc)) from None


@app.command(name="quantize-model")
def quantize_model(
    source: Annotated[Path, typer.Argument(help="the trained model's artifact (path stem or .npz)")],
    data: Annotated[Path, typer.Argument(help="its training data (calibration images): a benchmark "
                                              "folder or a folder per product")],
) -> None:
    """Write the model's full-integer network (SOURCE.int8.tflite), which LOOKALIKE_RUNTIME=litert-int8 runs."""
    stem = _trained_artifact(source, data)
    from lookalike.training.data import load_dataset
    from lookalike.training.quantize import quantize

    try:
        quantize(stem, load_dataset(data), log=console.print)
    except ValueError as exc:
        raise fail(str(exc)) from None


def _trained_artifact(source: Path, data: Path) -> Path:
    """The artifact's path stem, once it and the data folder are there."""
    stem = source.with_suffix("") if source.suffix in (".npz", ".json") else source
    if not stem.with_name(stem.name + ".npz").is_file():
        raise fail(f"{source}: no such model artifact (want {stem}.npz and {stem}.json)")
    if not data.is_dir():
        raise fail(f"{data}: no such folder")
    return stem


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
    from lookalike.pipeline.jobs import JobStore
    from lookalike.pipeline.reindex import reindex as run
    from lookalike.store import StoreLocked

    settings = get_settings()
    try:
        with progress_bar() as progress:
            task = progress.add_task("reindex", total=None, note="")
            report = run(settings, model, JobStore.from_url(settings.redis_dsn, settings.job_ttl_s),
                         lambda done, total: progress.update(task, completed=done, total=total),
                         force=force)
    except StoreLocked as exc:
        raise fail(str(exc), ExitCode.REFUSED) from None
    for f in report.failures:
        console.print(f"[red]failed[/] {escape(f'{f.product_id}/{f.image_id}: {f.reason}')}")
    console.print(f"{report.stored} of {report.images} images re-embedded into "
                  f"{report.target_collection} (from {report.source_collection}); "
                  + ("now live" if report.promoted else "[yellow]not made live[/]"))
    raise typer.Exit(ExitCode.OK if report.promoted else ExitCode.FAILED)


@app.command()
def optimize() -> None:
    """Build the embedded store's search index (HNSW) now, e.g. after a bulk load offline.

    `lookalike serve` builds it by itself (LOOKALIKE_INDEX_CHECK_S), so stop the service
    first: the embedded store has one owner. Exact search is fast enough to about 20k
    images; past that the index keeps search at a few milliseconds.
    """
    import time

    from lookalike.model import model_id

    settings = get_settings()
    if not settings.embedded:
        console.print("A Qdrant server builds its indexes itself: nothing to do.")
        return
    from lookalike.store import CatalogueStore, ModelMismatch, StoreLocked, open_client

    try:
        client = open_client(settings)
    except StoreLocked as exc:
        raise fail(str(exc), ExitCode.REFUSED) from None
    store = CatalogueStore(client, settings.collection, model_id(settings.model), dim=0)
    if not store.live_model():
        store.close()
        raise fail(f"No catalogue {settings.collection!r} in {settings.data_dir}: "
                    "nothing to index.", ExitCode.FAILED)
    started = time.perf_counter()
    try:
        points = store.count()
    except ModelMismatch as exc:  # FAILED_PRECONDITION in the service
        store.close()
        raise fail(str(exc), ExitCode.REFUSED) from None
    console.print(f"indexing {points:,} vectors of {store.collection} (a minute or so per 100k)")
    with console.status("indexing ..."):
        changed = store.optimize()
    store.close()
    console.print(f"{'indexed' if changed else 'already optimal'} in "
                  f"{time.perf_counter() - started:.0f} s")
