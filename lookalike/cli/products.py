"""`lookalike products`: list, show and update catalogue products (no re-embedding)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lookalike.cli.app import ServerOpt, SetOpt, app, client_for, console, row, to_json

products_app = typer.Typer(help="List, show and update catalogue products.",
                           no_args_is_help=True)
app.add_typer(products_app, name="products")


@products_app.command("list")
def list_products(
    category: Annotated[Optional[list[str]], typer.Option(help="only these categories")] = None,
    label: Annotated[Optional[list[str]], typer.Option(help="only products with these labels")] = None,
    product_set: SetOpt = "",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines, one per product")] = False,
    server: ServerOpt = None,
) -> None:
    """Every product (of the categories / labels given), by id, with its image count."""
    with client_for(server) as client:
        products = list(client.products(product_set, category or (), label or ()))
        categories = [] if products or not category else list(client.stats(product_set).categories)
    if as_json:
        for product in products:
            print(to_json(product, indent=None))
        return
    table = Table("product", "category", "title", "labels", "images",
                  title=escape(f"Products{f' of set {product_set}' if product_set else ''}"))
    for p in products:
        table.add_row(*row(p.product_id, p.category, p.title, ", ".join(p.labels), p.image_count))
    console.print(table)
    console.print(escape(f"{len(products)} products, "
                         f"{sum(p.image_count for p in products)} images"))
    if categories:  # an empty answer to a category filter: say which ones exist
        console.print(escape("categories in this set: " + ", ".join(
            f"{c.category or '(none)'} ({c.products})" for c in categories)))


@products_app.command("show")
def show(product_id: str, product_set: SetOpt = "",
         as_json: Annotated[bool, typer.Option("--json")] = False,
         server: ServerOpt = None) -> None:
    """A product's fields and images."""
    with client_for(server) as client:
        product = client.product(product_id, product_set)
    if as_json:
        print(to_json(product))
        return
    table = Table("field", "value", title=escape(f"Product {product.product_id}"))
    for name in ("product_set", "category", "title", "description"):
        table.add_row(*row(name, getattr(product, name)))
    table.add_row(*row("labels", ", ".join(product.labels)))
    for image in product.images:
        table.add_row(*row("image", f"{image.image_id}  ({image.source})"))
    console.print(table)


@products_app.command("update")
def update(
    product_id: str,
    title: Annotated[Optional[str], typer.Option()] = None,
    category: Annotated[Optional[str], typer.Option()] = None,
    label: Annotated[Optional[list[str]], typer.Option(
        help="the product's labels (repeat; replaces them all)")] = None,
    no_labels: Annotated[bool, typer.Option("--no-labels", help="remove every label")] = False,
    description: Annotated[Optional[str], typer.Option()] = None,
    product_set: SetOpt = "",
    server: ServerOpt = None,
) -> None:
    """Change a product's fields on all its images; nothing is embedded again."""
    from lookalike.cli.app import fail

    labels = [] if no_labels else label
    try:
        with client_for(server) as client:
            product = client.update_product(product_id, product_set, title=title,
                                            category=category, labels=labels,
                                            description=description)
    except ValueError as exc:  # nothing to update
        raise fail(str(exc)) from None
    console.print(escape(f"updated {product.product_id}: category {product.category!r}, "
                         f"title {product.title!r}, labels {list(product.labels)}, "
                         f"{product.image_count} images"))
