"""User errors at the command line: one red line that says why and what to do, an exit status
of its kind (lookalike.cli.app.ExitCode), never a traceback. The real `lookalike` script
against a real service (API keys on, a Redis of its own that a test can stop)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from lookalike.tools.local import free_port, start_service, stop

LOOKALIKE = Path(sys.executable).with_name("lookalike")
READER, WRITER = f"r{uuid.uuid4().hex}", f"w{uuid.uuid4().hex}"
SERVER_HINT = "(is the service running? set --server or LOOKALIKE_SERVER)"
USAGE, UNREACHABLE, DENIED, REFUSED = 2, 4, 5, 6  # ExitCode, spelled out


def lookalike(*args: str, server: str = "", key: str = "", columns: int = 200,
              **env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOOKALIKE_SERVER": server or f"127.0.0.1:{free_port()}",
           "LOOKALIKE_API_KEY": key, "COLUMNS": str(columns), **env}
    return subprocess.run([str(LOOKALIKE), *args], env=env, text=True, capture_output=True,
                          timeout=120)


def one_line(result: subprocess.CompletedProcess[str], status: int, *words: str,
             preamble: str = "") -> str:
    """The output is the error's one line (after `preamble`'s, when given) with every word."""
    out = (result.stdout + result.stderr).strip()
    assert "Traceback" not in out, out
    lines = out.splitlines()
    assert len(lines) == 1 + bool(preamble), out
    if preamble:
        assert preamble in lines[0], out
    assert result.returncode == status, out
    assert all(word in lines[-1] for word in words), out
    return lines[-1]


class OwnRedis:
    """A redis-server on a free port that a test may stop and start again."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@dataclass(frozen=True)
class Keyed:
    target: str
    data_dir: Path
    pid: int
    redis: OwnRedis | None  # None: no redis-server here, the shared Redis serves


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Keyed]:
    """One all-in-one service for the module, with API keys."""
    own = OwnRedis(tmp_path_factory.mktemp("redis")) if shutil.which("redis-server") else None
    if own:
        own.start()
    data_dir = tmp_path_factory.mktemp("keyed")
    env = {"REDIS_URL": own.url if own else redis_url, "LOOKALIKE_AUTH": "keys",
           "LOOKALIKE_READ_KEYS": READER, "LOOKALIKE_WRITE_KEYS": WRITER,
           "LOOKALIKE_QUEUE": f"lookalike.test.{uuid.uuid4().hex[:8]}"}
    try:
        proc, target = start_service(data_dir, env=env)
        try:
            yield Keyed(target, data_dir, proc.pid, own)
        finally:
            stop(proc)
    finally:
        if own:
            own.stop()


def test_search_names_a_path_it_cannot_read(tmp_path: Path) -> None:
    one_line(lookalike("search", str(tmp_path / "no-such.jpg")), USAGE,
             f"no such file: {tmp_path / 'no-such.jpg'}", "give a photo file or an http(s) URL")
    one_line(lookalike("search", str(tmp_path)), USAGE, f"{tmp_path} is a folder",
             "give a photo file")
    one_line(lookalike("search", "ftp://example.org/photo.jpg"), USAGE,
             "give a photo file or an http(s) URL")


@pytest.mark.parametrize("top_k", ["0", "-3", "101"])
def test_search_top_k_must_be_1_to_100(top_k: str, sample: Path) -> None:
    query = str(sample / "queries" / "cat-poster-1.jpg")
    one_line(lookalike("search", query, "-k", top_k), USAGE, "--top-k", "it must be 1..100")


def test_search_of_a_file_that_is_no_image(keyed: Keyed, tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_text("<html>not a photo</html>")
    one_line(lookalike("search", str(tmp_path / "photo.jpg"), server=keyed.target, key=READER),
             USAGE, "INVALID_ARGUMENT", "not a recognised image")


@pytest.fixture
def web(sample: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(Quiet, directory=str(sample / "queries")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_search_fetches_an_http_url(keyed: Keyed, web: str) -> None:
    found = lookalike("search", f"{web}/cat-poster-1.jpg", "--json", server=keyed.target,
                      key=READER)
    assert found.returncode == 0, found.stdout + found.stderr
    assert json.loads(found.stdout)["model"]  # searched: the service answered
    one_line(lookalike("search", f"{web}/no-such.jpg", server=keyed.target, key=READER), USAGE,
             f"cannot fetch {web}/no-such.jpg: HTTP 404")


def test_a_photo_url_is_fetched_up_to_a_limit(web: str) -> None:
    import typer

    from lookalike.cli.app import fetch_photo

    assert fetch_photo(f"{web}/cat-poster-1.jpg")[:2] == b"\xff\xd8"  # a JPEG
    with pytest.raises(typer.Exit) as refused:
        fetch_photo(f"{web}/cat-poster-1.jpg", limit=1000)
    assert refused.value.exit_code == USAGE


def test_ingest_of_a_catalogue_it_cannot_read(tmp_path: Path, sample: Path) -> None:
    """The messages are lookalike.tools.catalogue's; the CLI makes each one line and USAGE."""
    one_line(lookalike("ingest", str(tmp_path / "none.csv")), USAGE,
             f"no catalogue at {tmp_path / 'none.csv'}", "give a CSV file or a folder")
    (tmp_path / "columns.csv").write_text("image_uri,title\nmug.jpg,Mug\n")  # no product id
    one_line(lookalike("ingest", str(tmp_path / "columns.csv")), USAGE, "columns.csv",
             "product")
    one_line(lookalike("ingest", str(sample / "queries" / "cat-poster-1.jpg")), USAGE,
             "cat-poster-1.jpg")  # not a CSV


def test_every_client_command_says_when_the_service_is_down(sample: Path) -> None:
    down = f"127.0.0.1:{free_port()}"  # nothing listens there
    catalogue = str(sample / "catalogue.csv")
    for args in (("search", str(sample / "queries" / "cat-poster-1.jpg")), ("stats",),
                 ("ingest", catalogue), ("delete", "p1"), ("health",)):
        started = time.monotonic()
        result = lookalike(*args, server=down)
        took = time.monotonic() - started
        line = one_line(result, UNREACHABLE, down, SERVER_HINT,
                        preamble=catalogue if args[0] == "ingest" else "")
        assert line.startswith("UNAVAILABLE: ") and took < 8, (args, took)


def test_a_missing_or_wrong_api_key_is_named(keyed: Keyed, sample: Path) -> None:
    hint = "set LOOKALIKE_API_KEY to"
    one_line(lookalike("stats", server=keyed.target), DENIED,
             "UNAUTHENTICATED: missing API key", hint)
    one_line(lookalike("search", str(sample / "queries" / "cat-poster-1.jpg"),
                       server=keyed.target, key="k" + READER), DENIED,
             "UNAUTHENTICATED: unknown API key", hint)
    one_line(lookalike("delete", "p1", server=keyed.target, key=READER), DENIED,
             "PERMISSION_DENIED", "may read but not call DeleteProducts", f"{hint} a write key")
    catalogue = str(sample / "catalogue.csv")
    one_line(lookalike("ingest", catalogue, server=keyed.target, key=READER), DENIED,
             "PERMISSION_DENIED", "SubmitIngest", hint, preamble=catalogue)


def test_a_locked_store_names_its_holder(keyed: Keyed) -> None:
    env = {"QDRANT_URL": "", "LOOKALIKE_DATA_DIR": str(keyed.data_dir), "LOOKALIKE_AUTH": "none",
           "LOOKALIKE_LISTEN": f"127.0.0.1:{free_port()}"}
    for command in ("optimize", "serve"):
        one_line(lookalike(command, **env), REFUSED, f"embedded store at {keyed.data_dir}",
                 f"in use by process {keyed.pid}", "stop it first")


def test_serve_on_a_catalogue_live_on_another_model_says_so_at_start(tmp_path: Path) -> None:
    """Restarting with another LOOKALIKE_MODEL must not silently serve that model's collection."""
    from lookalike.config import Settings
    from lookalike.model import model_id
    from lookalike.store import CatalogueStore

    settings = Settings(data_dir=tmp_path, qdrant_url="")
    CatalogueStore.open(settings, model_id("efficientnet-lite0"), 4).close()
    env = {"QDRANT_URL": "", "LOOKALIKE_DATA_DIR": str(tmp_path), "LOOKALIKE_AUTH": "none",
           "LOOKALIKE_LISTEN": f"127.0.0.1:{free_port()}", "LOOKALIKE_MODEL": "lite0-shelf"}
    one_line(lookalike("serve", **env), REFUSED, "is live on model 'efficientnet-lite0@",
             "runs 'lite0-shelf@", "LOOKALIKE_MODEL=efficientnet-lite0", "lookalike reindex")


def test_serve_on_a_catalogue_built_with_the_int8_network_names_the_runtime(tmp_path: Path) -> None:
    from lookalike.config import Settings
    from lookalike.model import model_id
    from lookalike.store import CatalogueStore

    settings = Settings(data_dir=tmp_path, qdrant_url="")
    CatalogueStore.open(settings, model_id("lite0-shelf", "litert-int8"), 4).close()
    env = {"QDRANT_URL": "", "LOOKALIKE_DATA_DIR": str(tmp_path), "LOOKALIKE_AUTH": "none",
           "LOOKALIKE_LISTEN": f"127.0.0.1:{free_port()}", "LOOKALIKE_MODEL": "lite0-shelf",
           "LOOKALIKE_RUNTIME": "litert"}
    one_line(lookalike("serve", **env), REFUSED, ".int8-", "set LOOKALIKE_RUNTIME=litert-int8,",
             "lookalike reindex --model lite0-shelf")


def test_ingest_says_when_the_service_cannot_reach_redis(keyed: Keyed, sample: Path,
                                                         tmp_path: Path,
                                                         service_env: dict[str, str]) -> None:
    catalogue = str(sample / "catalogue.csv")

    def ingest(target: str, key: str = "") -> str:
        return one_line(lookalike("ingest", catalogue, server=target, key=key), UNREACHABLE,
                        "UNAVAILABLE", "the service cannot reach Redis", "start Redis or fix "
                        "the service's REDIS_URL", preamble=catalogue)

    if keyed.redis is None:  # no redis-server to stop: a service whose Redis is a closed port
        env = {**service_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
        proc, target = start_service(tmp_path / "data", env=env)
        try:
            line = ingest(target)
        finally:
            stop(proc)
    else:
        keyed.redis.stop()
        try:
            line = ingest(keyed.target, WRITER)
        finally:
            keyed.redis.start()
    assert SERVER_HINT not in line  # the service answered: it is running


def test_tables_fold_long_ids_instead_of_cutting_them(keyed: Keyed, sample: Path,
                                                      tmp_path: Path) -> None:
    product_id, image_id = "p" * 60 + "-" + "q" * 59, "front-" + "i" * 94 + ".png"
    assert len(product_id) == 120
    lamp = sample / "catalogue" / "moon-lamp.png"
    (tmp_path / "long.csv").write_text(f"image_uri,product_id,image_id\n{lamp},{product_id},"
                                       f"{image_id}\n")
    stored = lookalike("ingest", str(tmp_path / "long.csv"), server=keyed.target, key=WRITER)
    assert stored.returncode == 0, stored.stdout + stored.stderr

    found = lookalike("search", str(lamp), "-k", "1", server=keyed.target, key=READER,
                      columns=60)
    assert found.returncode == 0, found.stdout + found.stderr
    rows = [line.split("│") for line in found.stdout.splitlines() if line.count("│") == 8]
    assert "".join(cells[2].strip() for cells in rows) == product_id, found.stdout
    assert "".join(cells[7].strip() for cells in rows) == image_id, found.stdout
    as_json = lookalike("search", str(lamp), "-k", "1", "--json", server=keyed.target,
                        key=READER, columns=60)
    assert json.loads(as_json.stdout)["matches"][0]["productId"] == product_id


def test_a_setting_that_does_not_parse_is_named() -> None:
    one_line(lookalike("stats", LOOKALIKE_TLS="maybe"), USAGE, "LOOKALIKE_TLS='maybe'",
             "valid boolean")


def test_an_evaluation_given_a_csv_or_a_plain_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "gallery.csv").write_text("gallery_file,product_id\ng1.jpg,p1\n")
    (tmp_path / "ground_truth.csv").write_text("query_file,product_id\nq1.jpg,p1\n")
    for command in ("eval", "eval-copies"):
        one_line(lookalike(command, str(tmp_path / "gallery.csv")), USAGE,
                 f"give the benchmark folder {tmp_path}, not its gallery.csv")
        one_line(lookalike(command, str(tmp_path.parent)), USAGE, "not a benchmark folder",
                 str(tmp_path.parent))


def test_shrink_and_quantize_model_name_a_missing_artifact_or_folder(tmp_path: Path) -> None:
    shipped = str(Path(__file__).parents[1] / "lookalike" / "model" / "artifacts" / "lite0-shelf")
    for command, out in (("shrink-model", [str(tmp_path / "o")]), ("quantize-model", [])):
        one_line(lookalike(command, str(tmp_path / "nothing"), str(tmp_path), *out),
                 USAGE, "nothing: no such model artifact")
        one_line(lookalike(command, shipped, str(tmp_path / "no-data"), *out),
                 USAGE, "no-data: no such folder")
    assert not list(tmp_path.glob("o.*"))
