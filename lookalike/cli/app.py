"""The `lookalike` Typer app and what its commands share: console, client, progress, tables."""

from __future__ import annotations

from typing import Annotated, Optional

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


def _version(shown: bool) -> None:
    if shown:
        from importlib.metadata import version

        console.print(f"lookalike {version('lookalike')}")
        raise typer.Exit()


@app.callback()
def root(_: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                         help="print the version and exit")] = False) -> None:
    """lookalike: find the catalogue products that look like a photo."""


ServerOpt = Annotated[Optional[str], typer.Option("--server", "-s",
                      help="query service address [env LOOKALIKE_SERVER]")]


def row(*cells: object) -> list[Text]:
    """Table cells as plain text: product ids and titles are data, never Rich markup."""
    return [Text(str(cell)) for cell in cells]


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]{escape(message)}[/]", soft_wrap=True)
    return typer.Exit(code)


def client_for(server: str | None):
    from lookalike.client import Client

    settings = get_settings()
    return Client(server or settings.server, api_key=settings.api_key, tls=settings.tls,
                  tls_ca=settings.tls_ca)



def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=console)


def ingest_with_progress(client, entries, stall_s: float | None = None):
    from lookalike.tools import bulk

    with progress_bar() as progress:
        task = progress.add_task("ingest", total=len(entries), note="")

        def update(total: int, done: int, failed: int) -> None:
            progress.update(task, total=total, completed=done + failed,
                            note=f"{done} stored, {failed} failed")

        try:
            outcome = bulk.ingest(client, entries, update, stall_s=stall_s or bulk.STALL_S)
        except bulk.IngestStalled as exc:
            raise fail(str(exc), 3) from None
    failures = outcome.failures
    console.print(f"[green]{outcome.done} stored[/], [{'red' if failures else 'green'}]"
                  f"{len(failures)} failed[/] (jobs: {', '.join(j.job_id for j in outcome.jobs)})")
    if failures:
        table = Table("product", "image", "reason", title="Failed items")
        for f in failures:
            table.add_row(*row(f.product_id, f.image_id, f.reason))
        console.print(table)
    return outcome



def print_objects(response, name: str) -> None:
    """One table per product found in the photo."""
    if not response.objects:
        console.print(escape(f"no product found in {name} (per-object search: a product counts "
                             f"when its catalogue image is verified in the photo)"))
    for i, obj in enumerate(response.objects, start=1):
        corners = " ".join(f"({p.x:.0f},{p.y:.0f})" for p in obj.bounding_poly)
        table = Table("#", "product", "inliers", "category", "title", "image",
                      title=escape(f"Object {i} in {name}: score {obj.score:.2f}, at {corners}"))
        for rank, m in enumerate(obj.matches, start=1):
            table.add_row(*row(rank, m.product_id, str(m.inliers), m.category, m.title, m.image_id))
        console.print(table)
    console.print(escape(f"model {response.model}, {len(response.objects)} objects, "
                         f"{response.server_ms:.1f} ms in the server"))


def print_matches(response, title: str) -> None:
    table = Table("#", "product", "score", "inliers", "category", "title", "image",
                  title=escape(title))
    for rank, m in enumerate(response.matches, start=1):
        evidence = f"{m.inliers} verified" if m.verified else (str(m.inliers) if m.inliers else "")
        table.add_row(*row(rank, m.product_id, f"{m.score:.3f}", evidence, m.category, m.title,
                           m.image_id))
    console.print(table)
    console.print(escape(f"model {response.model}, verify {response.verify or 'off'}, "
                         f"{response.server_ms:.1f} ms in the server"))
