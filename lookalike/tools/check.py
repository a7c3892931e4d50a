"""`lookalike ingest --check`: what ingesting would refuse, found here, with no service.

Each local image is opened as ingest would open it and its header read as the service
reads it (lookalike.imaging.probe: format, pixel count, sides, truncation), so a failure
found here is the failure ingest would report. URLs are not fetched: the service does that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lookalike.config import get_settings
from lookalike.tools.catalogue import Catalogue, Entry, Problem, misplaced_hint


@dataclass
class Checked:
    problems: list[Problem] = field(default_factory=list)  # the catalogue's and the files'
    notes: list[str] = field(default_factory=list)  # what was not checked, and why


def check(catalogue: Catalogue) -> Checked:
    settings = get_settings()
    try:  # the server install's decoder; the client install checks files, not their contents
        from lookalike.imaging import ImageRejected, Limits, probe

        limits = Limits.of(settings)
    except ImportError as exc:
        probe = None
        note = (f"image contents not checked ({exc.name} is not installed: "
                "pip install 'lookalike[server]' to check them)")
    checked = Checked(list(catalogue.problems), [] if probe else [note])
    remote = 0
    for entry in catalogue:
        if entry.is_remote:
            remote += 1
            continue
        reason = _file_problem(Path(entry.uri), settings.max_image_bytes)
        if reason is None and probe is not None:
            try:
                probe(Path(entry.uri).read_bytes(), limits)
            except ImageRejected as exc:
                reason = f"{exc}: {entry.uri}"
        if reason:
            checked.problems.append(_problem(entry, reason))
    checked.problems.sort(key=_line_order)
    if remote:
        checked.notes.append(f"{remote:,} URLs not fetched: the service fetches them at ingest")
    return checked


def _file_problem(path: Path, max_bytes: int) -> str | None:
    try:
        size = path.stat().st_size
        if path.is_dir():
            return f"a folder, not an image: {path}"
        with path.open("rb"):  # readable by this user, as ingest will read it
            pass
    except FileNotFoundError:
        return f"no such file: {path}{misplaced_hint(path)}"
    except PermissionError:
        return f"permission denied: {path}"
    except OSError as exc:
        return f"{exc.strerror or exc}: {path}"
    if size > max_bytes:
        return (f"{size:,} bytes; the service takes at most {max_bytes:,} "
                f"(LOOKALIKE_MAX_IMAGE_BYTES): {path}")
    return None


def _line_order(problem: Problem) -> tuple[str, int]:
    name, _, line = problem.where.rpartition(":")
    return (name, int(line)) if line.isdigit() else (problem.where, 0)


def _problem(entry: Entry, reason: str) -> Problem:
    return Problem(entry.where, reason, entry.product_id, entry.image_id)
