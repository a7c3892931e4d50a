"""Client commands against a running service: health, ingest, search, stats, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from lookalike.cli.app import (
    MAX_TOP_K,
    ExitCode,
    ServerOpt,
    SetOpt,
    app,
    client_for,
    console,
    fail,
    ingest_with_progress,
    print_matches,
    print_objects,
    read_photo,
    to_json,
    user_input,
)


@app.command()
def health(server: ServerOpt = None) -> None:
    """Exit 0 when the query service answers SERVING (1: NOT SERVING; 4: no answer)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with client_for(server) as client:  # no answer: one line and UNREACHABLE, not NOT SERVING
        answer = health_pb2_grpc.HealthStub(client.channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=2.0)
    ok = answer.status == health_pb2.HealthCheckResponse.SERVING
    console.print("SERVING" if ok else "NOT SERVING")
    raise typer.Exit(ExitCode.OK if ok else ExitCode.FAILED)


@app.command()
def ingest(
    catalogue: Annotated[Path, typer.Argument(help="CSV, benchmark folder (gallery.csv), "
                                              "or folder of product folders")],
    server: ServerOpt = None,
    stall_timeout: Annotated[float, typer.Option(
        help="give up waiting when no image was processed for this many seconds")] = 300.0,
    product_set: Annotated[str, typer.Option(
        "--product-set", "--set", help="the product set of the rows that name none "
        "(default: the default set)")] = "",
    check: Annotated[bool, typer.Option(
        "--check", help="check the catalogue and its files and send nothing (no service "
        "needed): exit 0 when every row would be sent, 1 when some would fail")] = False,
    sync: Annotated[bool, typer.Option(
        "--sync", help="make each product set the file names equal to the file: also delete "
        "the products and images it does not list and update changed product fields")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="with --sync: print the plan, change nothing")] = False,
) -> None:
    """Load catalogue images into the service, with a live progress bar.

    Rows that cannot be sent (a missing id, an unreadable file, an unsupported URI) are
    left out and listed in the failure table at the end, with their line; exit status 1.
    """
    from lookalike.tools.catalogue import read_catalogue, set_name_problem

    if reason := set_name_problem(product_set):
        raise fail(f"--product-set {reason}")
    with user_input(f"catalogue {catalogue}"):
        entries = read_catalogue(catalogue, product_set)
    console.print(escape(f"{catalogue}: {entries.summary()}"), soft_wrap=True)
    for warning in entries.warnings:  # before anything is sent: there is still time to stop
        console.print(f"[yellow]warning: {escape(warning)}[/]", soft_wrap=True)
    if check:
        raise typer.Exit(_check(entries))
    if dry_run and not sync:
        raise fail("--dry-run goes with --sync (use --check to validate a catalogue)")
    with client_for(server) as client:
        if sync:
            from lookalike.cli.sync import sync as run_sync

            raise typer.Exit(run_sync(client, entries, dry_run, stall_timeout))
        outcome = ingest_with_progress(client, entries, stall_timeout)
    raise typer.Exit(ExitCode.FAILED if outcome.failures else ExitCode.OK)


def _check(entries) -> ExitCode:
    """`ingest --check`: print what ingesting the Catalogue would refuse; FAILED when anything."""
    from rich.table import Column, Table

    from lookalike.cli.app import row
    from lookalike.tools.catalogue import plural
    from lookalike.tools.check import check

    checked = check(entries)
    for note in checked.notes:
        console.print(escape(f"note: {note}"), soft_wrap=True)
    if not checked.problems:
        console.print("[green]no problems found[/]: ready to ingest")
        return ExitCode.OK
    table = Table("where", Column("product", overflow="fold"), Column("image", overflow="fold"),
                  "problem", title=f"{plural(len(checked.problems), 'row')} would fail")
    for problem in checked.problems:
        table.add_row(*row(problem.where, problem.product_id, problem.image_id, problem.reason))
    console.print(table)
    return ExitCode.FAILED


def _top_k(value: int) -> int:
    if not 1 <= value <= MAX_TOP_K:
        raise typer.BadParameter(f"{value}; it must be 1..{MAX_TOP_K}")
    return value


@app.command()
def search(
    image: Annotated[Optional[str], typer.Argument(
        help="photo to look up: a file or an http(s) URL (optional with --text)")] = None,
    text: Annotated[str, typer.Option(
        help="words to find in the products' title, description, category and labels (BM25); "
             "with a photo, both rankings are fused")] = "",
    top_k: Annotated[int, typer.Option("--top-k", "-k", callback=_top_k,
                                       help="how many products, 1..100")] = 5,
    category: Annotated[Optional[list[str]], typer.Option(help="only these categories")] = None,
    label: Annotated[Optional[list[str]], typer.Option(help="only products with these labels")] = None,
    min_score: Annotated[float, typer.Option(help="drop matches below this cosine score")] = 0.0,
    verify: Annotated[str, typer.Option(
        help="stage 2: auto, off or on (default: the server's LOOKALIKE_VERIFY)")] = "",
    objects: Annotated[bool, typer.Option(
        "--objects", help="find each product in the photo: one table per object")] = False,
    sheet: Annotated[Optional[Path], typer.Option(help="write a contact sheet PNG here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    product_set: SetOpt = "",
    server: ServerOpt = None,
) -> None:
    """Print the products that look like IMAGE (and/or match --text), best first."""
    if image is None and not text.strip():
        raise fail("give a PHOTO, --text WORDS, or both")
    if image is None and (sheet or objects):
        raise fail("--sheet and --objects need a PHOTO")
    data, name = read_photo(image) if image is not None else (b"", "")
    name = " + ".join(x for x in (name, repr(text.strip()) if text.strip() else "") if x)
    with client_for(server) as client:
        try:  # a failed call: one line and its ExitCode (app.OneLineErrors)
            response = client.search(data, top_k, category or (), label or (), min_score, verify,
                                     per_object=objects, product_set=product_set, text=text)
        except ValueError as exc:  # an option the request cannot carry
            raise fail(str(exc)) from None
        # Nothing in the categories asked for: say which ones this set has.
        known = ([] if response.matches or not category or as_json
                 else list(client.stats(product_set).categories))
    if as_json:
        print(to_json(response))
    elif objects:
        print_objects(response, name)
    else:
        print_matches(response, f"Products like {name}")
    if known:
        console.print(escape("no product of category " + ", ".join(category or ()) + "; the "
                             "categories of this set: " + ", ".join(
                                 f"{c.category or '(none)'} ({c.products})" for c in known)),
                      soft_wrap=True)
    if sheet:
        from lookalike.imaging import Limits, decode, probe
        from lookalike.tools import sheet as sheets

        photo = decode(data)
        scale = max(photo.shape[:2]) / max(probe(data, Limits())[1:])  # outlines: sent pixels
        rows = (sheets.object_rows(photo, response.objects, scale) if objects
                else [sheets.query_row(photo, response.matches, scale=scale)])
        sheets.render(rows or [[sheets.Tile(photo, ("no product found", ""))]], sheet)
        console.print(escape(f"contact sheet: {sheet}"))


@app.command()
def stats(product_set: SetOpt = "", server: ServerOpt = None) -> None:
    """Catalogue size, products per category, and the model that embedded it."""
    with client_for(server) as client:
        s = client.stats(product_set)
    where = f"product set {s.product_set}" if s.product_set else "the default product set"
    console.print(escape(f"collection {s.collection}, {where}: {s.points} vectors of "
                         f"{s.products} products, model {s.model_name}@{s.model_version} "
                         f"({s.vector_size}-d)"))
    if s.categories:
        console.print(escape("categories: " + ", ".join(
            f"{c.category or '(none)'} {c.products}" for c in s.categories)), soft_wrap=True)


@app.command()
def delete(product_ids: Annotated[list[str], typer.Argument()], product_set: SetOpt = "",
           server: ServerOpt = None) -> None:
    """Remove every image of the given products."""
    with client_for(server) as client:
        console.print(f"deleted {client.delete(product_ids, product_set)} images")
