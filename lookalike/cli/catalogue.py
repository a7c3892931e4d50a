"""Client commands against a running service: health, ingest, search, stats, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import grpc
import typer
from rich.markup import escape

from lookalike.cli.app import (
    ServerOpt,
    app,
    client_for,
    console,
    fail,
    ingest_with_progress,
    print_matches,
    print_objects,
)


@app.command()
def health(server: ServerOpt = None) -> None:
    """Exit 0 when the query service answers SERVING."""
    with client_for(server) as client:
        ok = client.healthy()
    console.print("SERVING" if ok else "NOT SERVING")
    raise typer.Exit(0 if ok else 1)


@app.command()
def ingest(
    catalogue: Annotated[Path, typer.Argument(help="CSV, benchmark folder (gallery.csv), "
                                              "or folder of product folders")],
    server: ServerOpt = None,
    stall_timeout: Annotated[float, typer.Option(
        help="give up waiting when no image was processed for this many seconds")] = 300.0,
) -> None:
    """Load catalogue images into the service, with a live progress bar."""
    from lookalike.tools.catalogue import read_catalogue

    entries = read_catalogue(catalogue)
    console.print(escape(f"{len(entries)} images of {len({e.product_id for e in entries})} "
                         f"products from {catalogue}"))
    with client_for(server) as client:
        outcome = ingest_with_progress(client, entries, stall_timeout)
    raise typer.Exit(1 if outcome.failures else 0)


@app.command()
def search(
    image: Annotated[Path, typer.Argument(help="photo to look up")],
    top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5,
    category: Annotated[Optional[list[str]], typer.Option(help="only these categories")] = None,
    label: Annotated[Optional[list[str]], typer.Option(help="only products with these labels")] = None,
    min_score: Annotated[float, typer.Option(help="drop matches below this cosine score")] = 0.0,
    verify: Annotated[str, typer.Option(
        help="stage 2: auto, off or on (default: the server's LOOKALIKE_VERIFY)")] = "",
    objects: Annotated[bool, typer.Option(
        "--objects", help="find each product in the photo: one table per object")] = False,
    sheet: Annotated[Optional[Path], typer.Option(help="write a contact sheet PNG here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    server: ServerOpt = None,
) -> None:
    """Print the products that look like IMAGE, best first."""
    data = image.read_bytes()
    with client_for(server) as client:
        try:
            response = client.search(data, top_k, category or (), label or (), min_score, verify,
                                     per_object=objects)
        except grpc.RpcError as exc:
            raise fail(f"{exc.code().name}: {exc.details()}", 1) from None
        except ValueError as exc:  # an option the request cannot carry
            raise fail(str(exc)) from None
    if as_json:
        from google.protobuf.json_format import MessageToDict

        # Every field, empty ones too: a search that found nothing still has "matches": [].
        print(json.dumps(MessageToDict(response, always_print_fields_with_no_presence=True),
                         indent=2))
    elif objects:
        print_objects(response, image.name)
    else:
        print_matches(response, f"Products like {image.name}")
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
def stats(server: ServerOpt = None) -> None:
    """Catalogue size and the model that embedded it."""
    with client_for(server) as client:
        s = client.stats()
    console.print(escape(f"collection {s.collection}: {s.points} vectors of {s.products} "
                         f"products, model {s.model_name}@{s.model_version} ({s.vector_size}-d)"))


@app.command()
def delete(product_ids: Annotated[list[str], typer.Argument()], server: ServerOpt = None) -> None:
    """Remove every image of the given products."""
    with client_for(server) as client:
        console.print(f"deleted {client.delete(product_ids)} images")
