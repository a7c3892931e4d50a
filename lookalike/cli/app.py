"""The `lookalike` Typer app and what its commands share: console, client, progress, tables,
and how errors end a command: one red line and an ExitCode, never a traceback."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, NoReturn, Optional
from urllib.parse import unquote, urlsplit

import grpc
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text
from typer.core import TyperGroup

from lookalike.config import ConfigError, get_settings

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError


class ExitCode(IntEnum):
    """What a command's exit status means: the same for every command (README: exit statuses)."""

    OK = 0
    FAILED = 1       # it ran and found failures: failed items, NOT SERVING, a service error
    USAGE = 2        # bad usage or input: no such file, wrong kind of file, bad option or setting
    STALLED = 3      # it waited and nothing moved, or an answer did not come in time
    UNREACHABLE = 4  # no answer from the service (or the service cannot reach Redis / its store)
    DENIED = 5       # not allowed: missing, unknown or read-only API key
    REFUSED = 6      # the store or service refuses in its present state: store locked, mismatch


# gRPC status -> exit status; any other status (INTERNAL, UNKNOWN, ...) is FAILED.
EXIT_OF_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.USAGE,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.USAGE,
    grpc.StatusCode.NOT_FOUND: ExitCode.USAGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ExitCode.USAGE,  # a request over a size limit
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNREACHABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNREACHABLE,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.DENIED,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.DENIED,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.REFUSED,
    grpc.StatusCode.ABORTED: ExitCode.REFUSED,
}
SERVER_HINT = "is the service running? set --server or LOOKALIKE_SERVER"
# Trailing metadata the service adds to an UNAVAILABLE of its own (lookalike.api.interceptors):
# the service answered, a part behind it (Redis, the vector store) did not.
UNAVAILABLE_PART = "lookalike-unavailable"
HINT_OF_STATUS = {
    grpc.StatusCode.UNAVAILABLE: SERVER_HINT,
    grpc.StatusCode.DEADLINE_EXCEEDED: f"no answer in time: {SERVER_HINT}",
    grpc.StatusCode.UNAUTHENTICATED: "set LOOKALIKE_API_KEY to a key the service accepts",
    grpc.StatusCode.PERMISSION_DENIED: "set LOOKALIKE_API_KEY to a write key",
}


def rpc_error(exc: grpc.RpcError) -> tuple[str, ExitCode]:
    """A failed call as one line (status, the service's message, what to do) and its exit status."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    answered = UNAVAILABLE_PART in dict(exc.trailing_metadata() or ()) if hasattr(
        exc, "trailing_metadata") else False
    hint = "" if answered else HINT_OF_STATUS.get(code, "")
    return (f"{code.name}: {details}" + (f" ({hint})" if hint else ""),
            EXIT_OF_STATUS.get(code, ExitCode.FAILED))


class OneLineErrors(TyperGroup):
    """Where every command's user errors end: a failed call to the service, a setting that
    does not parse, a bad option value become one red line and an ExitCode. Anything else
    is a bug and keeps its traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:  # the command's arguments: bad value, missing, unknown
            help_hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            raise fail(exc.format_message() + help_hint, ExitCode.USAGE) from None
        except ConfigError as exc:
            raise fail(str(exc), ExitCode.USAGE) from None
        except grpc.RpcError as exc:
            raise fail(*rpc_error(exc)) from None


app = typer.Typer(help="lookalike: find the catalogue products that look like a photo.",
                  cls=OneLineErrors, no_args_is_help=True, pretty_exceptions_enable=False)
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
SetOpt = Annotated[str, typer.Option("--product-set", "--set",
                   help="the product set (catalogue) to use; default: the default set")]


def row(*cells: object) -> list[Text]:
    """Table cells as plain text: product ids and titles are data, never Rich markup."""
    return [Text(str(cell)) for cell in cells]


def to_json(message, indent: int | None = 2) -> str:
    """A response as JSON with every field, empty ones too: a search that found nothing still
    has "matches": []; wide ids are never cut."""
    import json

    from google.protobuf.json_format import MessageToDict

    return json.dumps(MessageToDict(message, always_print_fields_with_no_presence=True),
                      indent=indent)


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> typer.Exit:
    """Print the one line that says why (red); `raise fail(...)` ends the command with `code`."""
    console.print(f"[red]{escape(message)}[/]", soft_wrap=True)
    return typer.Exit(int(code))


def require_benchmarks(folders: list[Path]) -> None:
    """Each folder must be a benchmark (gallery.csv + ground_truth.csv), in one line if not;
    one of its CSV files given instead of the folder is named as such."""
    for folder in folders:
        if folder.is_file() and folder.name in ("gallery.csv", "ground_truth.csv"):
            fail_now(f"give the benchmark folder {folder.parent}, not its {folder.name}")
    missing = [str(d) for d in folders if not (d / "gallery.csv").is_file()
               or not (d / "ground_truth.csv").is_file()]
    if missing:
        fail_now(f"not a benchmark folder (gallery.csv + ground_truth.csv): {', '.join(missing)}")


@contextmanager
def user_input(what: str) -> Iterator[None]:
    """Reading what the user named (a catalogue, ...): an OSError or ValueError inside is the
    input's fault and ends the command with one line and ExitCode.USAGE."""
    try:
        yield
    except UnicodeDecodeError:
        raise fail(f"cannot read {what}: not UTF-8 text") from None
    except OSError as exc:  # the system's (no such file, permission denied) or a message of its own
        raise fail(f"cannot read {what}: {exc.strerror}" if exc.strerror else str(exc)) from None
    except (ValueError, csv.Error) as exc:
        raise fail(str(exc)) from None


MAX_TOP_K = 100  # the service's default LOOKALIKE_MAX_TOP_K: refused before the call

# The photo to search for: a file, or an http(s) URL that the CLI fetches itself, as curl
# would, with the user's network, and sends as bytes like a file. Not the service: a Search
# carries bytes, and a service that fetched any URL a reader names could be made to probe
# its own network (ingest by URL is guarded by LOOKALIKE_ALLOW_PRIVATE_URLS for that). The
# limit is the service's default LOOKALIKE_MAX_IMAGE_BYTES: a larger photo would be refused.
MAX_PHOTO_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT_S = 20.0


def read_photo(source: str) -> tuple[bytes, str]:
    """The bytes of the photo `source` names and a short name for it (table titles)."""
    scheme = urlsplit(source).scheme.lower() if "://" in source else ""
    if scheme in ("http", "https"):
        return fetch_photo(source), PurePosixPath(urlsplit(source).path).name or source
    if scheme == "file":
        source = unquote(urlsplit(source).path)
    elif scheme:
        fail_now(f"cannot search {source}: give a photo file or an http(s) URL")
    path = Path(source)
    try:
        return path.read_bytes(), path.name
    except FileNotFoundError:
        fail_now(f"no such file: {path} (give a photo file or an http(s) URL)")
    except IsADirectoryError:
        fail_now(f"{path} is a folder: give a photo file (or an http(s) URL)")
    except OSError as exc:
        fail_now(f"cannot read {path}: {exc.strerror or exc}")


def fail_now(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    raise fail(message, code) from None


def fetch_photo(url: str, limit: int = MAX_PHOTO_BYTES, timeout_s: float = FETCH_TIMEOUT_S) -> bytes:
    """GET an http(s) URL: at most `limit` bytes, `timeout_s` for each network wait."""
    import http.client
    import urllib.error
    import urllib.request

    class HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
            if urlsplit(newurl).scheme.lower() not in ("http", "https"):
                raise urllib.error.HTTPError(newurl, code, "redirected to another scheme than "
                                             "http(s)", headers, fp)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.build_opener(HttpRedirectsOnly())
    request = urllib.request.Request(url, headers={"User-Agent": "lookalike-cli"})
    too_large = f"cannot search {url}: larger than {limit // (1024 * 1024)} MB"
    try:
        with opener.open(request, timeout=timeout_s) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                fail_now(too_large)
            data = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        fail_now(f"cannot fetch {url}: HTTP {exc.code} {exc.reason}")
    except (TimeoutError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            fail_now(f"cannot fetch {url}: no answer in {timeout_s:.0f} s", ExitCode.STALLED)
        fail_now(f"cannot fetch {url}: {getattr(reason, 'strerror', None) or reason}")
    except (OSError, http.client.HTTPException) as exc:
        fail_now(f"cannot fetch {url}: {exc}")
    if len(data) > limit:
        fail_now(too_large)
    return data


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
        except bulk.IngestStalled as exc:  # the bar stays: it shows how far the jobs came
            raise fail(str(exc), ExitCode.STALLED) from None
        except BaseException:  # e.g. no answer from the service: its one line says it all,
            progress.live.transient = True  # without the bar at 0/N above it
            progress.live.stop()
            progress.disable = True  # nor the blank line Progress.stop adds off a terminal
            raise
    failures = outcome.failures
    console.print(f"[green]{outcome.done} stored[/], [{'red' if failures else 'green'}]"
                  f"{len(failures)} failed[/] (jobs: {', '.join(j.job_id for j in outcome.jobs)})")
    if failures:
        table = Table(Column("product", overflow="fold"), Column("image", overflow="fold"),
                      "reason", title="Failed items")
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
        table = Table("#", Column("product", overflow="fold"), "inliers", "category", "title",
                      Column("image", overflow="fold"),
                      title=escape(f"Object {i} in {name}: score {obj.score:.2f}, at {corners}"))
        for rank, m in enumerate(obj.matches, start=1):
            table.add_row(*row(rank, m.product_id, str(m.inliers), m.category, m.title, m.image_id))
        console.print(table)
    console.print(escape(f"model {response.model}, {len(response.objects)} objects, "
                         f"{response.server_ms:.1f} ms in the server"))


def print_matches(response, title: str) -> None:
    table = Table("#", Column("product", overflow="fold"), "score", "inliers", "category",
                  "title", Column("image", overflow="fold"), title=escape(title))
    for rank, m in enumerate(response.matches, start=1):
        evidence = f"{m.inliers} verified" if m.verified else (str(m.inliers) if m.inliers else "")
        table.add_row(*row(rank, m.product_id, f"{m.score:.3f}", evidence, m.category, m.title,
                           m.image_id))
    console.print(table)
    console.print(escape(f"model {response.model}, verify {response.verify or 'off'}, "
                         f"{response.server_ms:.1f} ms in the server"))
