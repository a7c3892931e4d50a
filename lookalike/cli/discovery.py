"""`lookalike similar` (more like these products) and `lookalike duplicates`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Column, Table

from lookalike.cli.app import ServerOpt, SetOpt, app, client_for, console, print_matches, row, to_json


@app.command()
def similar(
    product_ids: Annotated[list[str], typer.Argument(help="products to find more like")],
    not_like: Annotated[Optional[list[str]], typer.Option(
        "--not", help="products the results should not look like (repeat)")] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100)] = 5,
    category: Annotated[Optional[list[str]], typer.Option(help="only these categories")] = None,
    label: Annotated[Optional[list[str]], typer.Option(help="only products with these labels")] = None,
    diversity: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="0: the most similar first; up to 1: more varied (MMR)")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    product_set: SetOpt = "",
    server: ServerOpt = None,
) -> None:
    """Products like PRODUCT_IDS (and unlike --not ones), the given products left out."""
    with client_for(server) as client:
        response = client.recommend(product_ids, not_like or (), top_k, category or (),
                                    label or (), product_set, diversity)
    if as_json:
        print(to_json(response))
        return
    print_matches(response, "More like " + ", ".join(product_ids)
                  + (f", not like {', '.join(not_like)}" if not_like else ""))


@app.command()
def duplicates(
    threshold: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="cosine from which two images are one (0: the server's)")] = 0.0,
    within_products: Annotated[bool, typer.Option(
        help="also groups whose images all belong to one product")] = False,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="write the groups here")] = None,
    sheet: Annotated[Optional[Path], typer.Option(help="write a contact sheet PNG here")] = None,
    product_set: SetOpt = "",
    server: ServerOpt = None,
) -> None:
    """Groups of catalogue images that are one picture (duplicate listings)."""
    with client_for(server) as client:
        found = client.duplicates(threshold, product_set, within_products)
    from lookalike.tools.catalogue import plural

    table = Table("group", Column("product", overflow="fold"), Column("image", overflow="fold"),
                  "cosine", "title", title=escape(
                      f"{plural(len(found.groups), 'duplicate group')} among "
                      f"{plural(found.images, 'image')} (cosine >= {found.threshold:.2f})"))
    for number, group in enumerate(found.groups, start=1):
        for image in group.images:
            table.add_row(*row(number, image.product_id, image.image_id, f"{image.score:.3f}",
                               image.title))
    console.print(table)
    if json_path:
        json_path.write_text(to_json(found))
        console.print(escape(f"groups: {json_path}"))
    if sheet:
        from lookalike.tools import sheet as sheets

        rows = [[sheets.Tile(sheets.load_thumbnail(i.source),
                             (f"{number}: {i.product_id}", f"{i.image_id} {i.score:.3f}"))
                 for i in group.images] for number, group in enumerate(found.groups, start=1)]
        sheets.render(rows or [[sheets.Tile(None, ("no duplicates", ""))]], sheet)
        console.print(escape(f"contact sheet: {sheet}"))
