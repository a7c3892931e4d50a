"""`lookalike ingest --sync`: print the plan per product set, then (unless a dry run) apply it."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Column, Table

from lookalike.cli.app import ExitCode, console, fail, ingest_with_progress, row


def _show(plan) -> None:
    from lookalike.tools.catalogue import plural

    name = plan.product_set or "(default)"
    if plan.empty:
        console.print(escape(f"product set {name}: nothing to change "
                             f"({plural(plan.unchanged, 'product')} as in the file)"))
        return
    table = Table("", Column("product", overflow="fold"), Column("change", overflow="fold"),
                  title=escape(f"Sync plan for product set {name}"))
    new = set(plan.new_products)
    for product_id in plan.new_products:
        images = sum(1 for e in plan.new_images if e.product_id == product_id)
        table.add_row(*row("+", product_id, f"new product, {plural(images, 'image')}"))
    for product_id in plan.deleted_products:
        table.add_row(*row("-", product_id, "deleted: not in the file"))
    for product_id, changed in plan.updated.items():
        table.add_row(*row("~", product_id, "; ".join(f"{k} -> {v!r}" for k, v in changed.items())))
    for entry in plan.new_images:
        if entry.product_id not in new:
            table.add_row(*row("+", entry.product_id, f"new image {entry.image_id}"))
    for product_id, image_ids in plan.deleted_images.items():
        table.add_row(*row("-", product_id, f"images deleted: {', '.join(image_ids)}"))
    console.print(table)
    console.print(escape(
        f"product set {name}: {len(plan.new_products)} new, {len(plan.deleted_products)} "
        f"deleted, {len(plan.updated)} updated, {plural(len(plan.new_images), 'image')} to "
        f"ingest, {plural(sum(map(len, plan.deleted_images.values())), 'image')} to delete, "
        f"{plan.unchanged} unchanged"))


def sync(client, catalogue, dry_run: bool, stall_s: float) -> ExitCode:
    """Rows that could not be read would read as products to delete: refuse then."""
    from lookalike.tools import sync as syncing
    from lookalike.tools.catalogue import plural

    if catalogue.problems:
        raise fail(f"{plural(len(catalogue.problems), 'row')} of the catalogue cannot be read "
                   f"(first: "
                   f"{catalogue.problems[0]}); --sync would delete their products: fix them "
                   "(`lookalike ingest --check` lists them) and sync again", ExitCode.USAGE)
    plans = syncing.plan(client, list(catalogue))
    for plan in plans:
        _show(plan)
    if dry_run:
        console.print("dry run: nothing was changed")
        return ExitCode.OK
    new_images = [entry for plan in plans for entry in plan.new_images]
    failed = False
    if new_images:  # first: an ingest that stops half-way has deleted nothing yet
        failed = bool(ingest_with_progress(client, new_images, stall_s).failures)
    for plan in plans:
        deleted = syncing.apply_deletions_and_updates(client, plan)
        if deleted or plan.updated:
            console.print(escape(f"product set {plan.product_set or '(default)'}: "
                                 f"{plural(deleted, 'image')} deleted, "
                                 f"{plural(len(plan.updated), 'product')} updated"))
    return ExitCode.FAILED if failed else ExitCode.OK
