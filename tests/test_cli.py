"""The `lookalike` command line against the running service, as a person would use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from lookalike.tools.local import start_service, stop
from tests.test_service import two_products


def lookalike(*args: str, server: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOOKALIKE_SERVER": server, "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "lookalike", *args], env=env, text=True,
                          capture_output=True, timeout=300)


def test_ingest_search_sheet_stats(service: str, sample: Path, tmp_path: Path) -> None:
    ingest = lookalike("ingest", str(sample / "catalogue.csv"), server=service)
    assert ingest.returncode == 0, ingest.stderr
    assert "14 stored" in ingest.stdout and "0 failed" in ingest.stdout

    sheet = tmp_path / "sheet.png"
    query = sample / "queries" / "cat-poster-1.jpg"
    found = lookalike("search", str(query), "-k", "3", "--sheet", str(sheet), server=service)
    assert found.returncode == 0, found.stderr
    table = found.stdout
    assert "cat-poster" in table.splitlines()[4]  # first row of the ranked table
    picture = cv2.imread(str(sheet))
    assert picture is not None and picture.shape[1] >= 4 * 200  # query + 3 matches

    as_json = json.loads(lookalike("search", str(query), "--json", server=service).stdout)
    assert as_json["matches"][0]["productId"] == "cat-poster"
    nothing = lookalike("search", str(query), "--json", "--category", "no-such-category",
                        server=service)
    assert json.loads(nothing.stdout)["matches"] == []  # the key is there when nothing is found
    version = lookalike("--version", server=service)
    assert version.returncode == 0 and version.stdout.startswith("lookalike ")

    two, _ = two_products(sample, ["camera-print", "astronaut-print"], np.random.default_rng(7))
    (tmp_path / "two.jpg").write_bytes(two)
    objects = lookalike("search", str(tmp_path / "two.jpg"), "--objects", "--sheet",
                        str(tmp_path / "objects.png"), server=service)
    assert objects.returncode == 0, objects.stderr
    assert objects.stdout.count("Object ") == 2 and "2 objects" in objects.stdout
    assert "camera-print" in objects.stdout and "astronaut-print" in objects.stdout
    rows = cv2.imread(str(tmp_path / "objects.png"))
    assert rows is not None and rows.shape[0] >= 2 * 200  # one row per object

    stats = lookalike("stats", server=service)
    assert "vectors of" in stats.stdout and "lite0-shelf@" in stats.stdout
    assert lookalike("health", server=service).returncode == 0


def test_eval_objects_generates_scenes_and_scores_them(service: str, sample: Path,
                                                        tmp_path: Path) -> None:
    bench = tmp_path / "scenes"
    args = ("eval-objects", str(bench), "--from", str(sample / "catalogue.csv"), "--per-kind", "4",
            "--json", str(tmp_path / "objects.json"))
    result = lookalike(*args, server=service)
    assert result.returncode == 0, result.stderr
    truth = json.loads((bench / "scenes.json").read_text())
    assert len(truth["scenes"]) == 4 and all(2 <= len(s["objects"]) <= 6 for s in truth["scenes"])
    scores = json.loads((tmp_path / "objects.json").read_text())
    printed = scores["printed"]
    assert printed["scenes"] == 4 and printed["objects"] == sum(len(s["objects"])
                                                               for s in truth["scenes"])
    assert printed["recall"] >= 0.5 and printed["precision"] >= 0.8, scores
    assert scores["server_ms_p50"] > 0 and "per-object search" in result.stdout
    assert cv2.imread(str(bench / "objects-sheet.png")) is not None
    again = lookalike(*args, server=service)  # same sources and seed: the scenes are reused
    assert "generating" not in again.stdout and again.returncode == 0
    missing = lookalike("eval-objects", str(tmp_path / "none"), server=service)
    assert missing.returncode != 0 and "--from" in missing.stdout + missing.stderr


def test_bad_image_gives_a_readable_error(service: str, tmp_path: Path) -> None:
    bogus = tmp_path / "photo.jpg"
    bogus.write_text("<html>not a photo</html>")
    result = lookalike("search", str(bogus), server=service)
    assert result.returncode == 2  # ExitCode.USAGE: bad input
    assert "INVALID_ARGUMENT" in result.stdout and "not a recognised image" in result.stdout


def test_ingest_reports_failed_items(service: str, sample: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp_path / "cat.csv").write_text(
        "image_uri,product_id\nbroken.jpg,broken-product\n"
        f"{sample / 'catalogue' / 'moon-lamp.png'},moon-lamp\n")
    result = lookalike("ingest", str(tmp_path / "cat.csv"), server=service)
    assert result.returncode == 1
    assert "1 stored" in result.stdout and "1 failed" in result.stdout
    assert "broken-product" in result.stdout


def test_optimize_indexes_an_embedded_store_offline(tmp_path: Path) -> None:
    import numpy as np

    from lookalike.config import Settings
    from lookalike.model.registry import DEFAULT_MODEL, model_id
    from lookalike.store import CatalogueImage, CatalogueStore, open_client

    env = {**os.environ, "QDRANT_URL": "", "LOOKALIKE_DATA_DIR": str(tmp_path), "COLUMNS": "160",
           "LOOKALIKE_VECTOR_DATATYPE": "float32", "LOOKALIKE_INDEXING_THRESHOLD_KB": "100"}
    run = lambda: subprocess.run([sys.executable, "-m", "lookalike", "optimize"],  # noqa: E731
                                 env=env, text=True, capture_output=True, timeout=300)
    empty = run()
    assert empty.returncode == 1 and "No catalogue 'lookalike'" in empty.stdout

    settings = Settings(data_dir=tmp_path, qdrant_url="", vector_datatype="float32",
                        indexing_threshold_kb=100)
    store = CatalogueStore.open(settings, model_id(DEFAULT_MODEL), 1280, open_client(settings))
    vectors = np.random.default_rng(0).standard_normal((200, 1280)).astype(np.float32)
    store.upsert([CatalogueImage(f"p{i}", "front", "", "") for i in range(200)], vectors)
    assert store.client.unindexed(store.collection) == 200
    store.close()

    done = run()
    assert done.returncode == 0, done.stderr
    assert "indexing 200 vectors" in done.stdout and "indexed in" in done.stdout
    store = CatalogueStore.open(settings, model_id(DEFAULT_MODEL), 1280, open_client(settings))
    assert store.client.unindexed(store.collection) == 0 and store.count() == 200
    store.close()


def test_product_text_is_printed_as_it_is(service: str, sample: Path, tmp_path: Path) -> None:
    """Rich markup in ids and titles is data: printed literally, never interpreted."""
    image = sample / "catalogue" / "brick-tile.png"
    (tmp_path / "cat.csv").write_text(
        f"image_uri,product_id,title\n{image},[/],[bold red]Tile[/bold red] [link=x]y\n")
    assert lookalike("ingest", str(tmp_path / "cat.csv"), server=service).returncode == 0
    found = lookalike("search", str(image), "-k", "1", server=service)
    assert found.returncode == 0, found.stdout + found.stderr
    assert "[/]" in found.stdout and "[bold red]Tile[/bold red]" in found.stdout


def test_file_uris_and_missing_files_are_rows_not_tracebacks(service: str, sample: Path,
                                                              tmp_path: Path) -> None:
    lamp = (sample / "catalogue" / "moon-lamp.png").resolve()
    (tmp_path / "cat.csv").write_text(
        f"image_uri,product_id\nfile://{lamp},lamp-by-uri\nfile:///no/such/photo.jpg,ghost\n"
        "gs://bucket/photo.jpg,cloud\n")
    result = lookalike("ingest", str(tmp_path / "cat.csv"), server=service)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "1 stored" in result.stdout and "2 failed" in result.stdout
    assert "no such file: /no/such/photo.jpg" in result.stdout
    assert "unsupported URI scheme 'gs'" in result.stdout


def test_ingest_stops_waiting_when_nothing_moves(tmp_path: Path, sample: Path,
                                                 service_env: dict[str, str]) -> None:
    """No worker consumes the queue (a query-only service): the CLI says which job is stuck."""
    proc, target = start_service(tmp_path / "data", service_env, args=("--query-only",))
    try:
        result = lookalike("ingest", str(sample / "catalogue.csv"), "--stall-timeout", "3",
                           server=target)
    finally:
        stop(proc)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "no progress for 3 s on job" in " ".join(result.stdout.split())
    assert "0/14 0 stored, 0 failed" in " ".join(result.stdout.split()), result.stdout


def test_a_service_that_is_down_is_one_line_not_a_traceback(sample: Path) -> None:
    from lookalike.tools.local import free_port

    down = f"127.0.0.1:{free_port()}"  # nothing listens there
    for args in (("stats",), ("delete", "p1"), ("search", str(sample / "queries" / "cat-poster-1.jpg"))):
        result = lookalike(*args, server=down)
        out = (result.stdout + result.stderr).strip()
        assert result.returncode == 4, out  # ExitCode.UNREACHABLE
        assert "Traceback" not in out and len(out.splitlines()) == 1, out
        assert out.startswith("UNAVAILABLE") and down in out, out


def test_a_setting_that_does_not_parse_is_one_line_naming_it() -> None:
    env = {**os.environ, "LOOKALIKE_AUTH": "bogus"}
    for command in ([sys.executable, "-m", "lookalike", "serve"],
                    [sys.executable, "-m", "lookalike_services.query"]):
        result = subprocess.run(command, env=env, text=True, capture_output=True, timeout=120)
        out = (result.stdout + result.stderr).strip()
        assert result.returncode == 2 and len(out.splitlines()) == 1, out
        assert "LOOKALIKE_AUTH='bogus'" in out and "Traceback" not in out, out


def test_ingest_reads_excel_semicolons_and_fails_only_the_bad_rows(service: str, sample: Path,
                                                                   tmp_path: Path) -> None:
    """Excel's semicolons and column names; a row without a product and a gs:// row fail alone,
    with their lines; two rows of a product that disagree on its title are warned about."""
    import shutil

    for name in ("lamp-front.png", "lamp-back.png"):
        shutil.copy(sample / "catalogue" / "moon-lamp.png", tmp_path / name)
    (tmp_path / "excel.csv").write_text(
        "filename;sku;name\n"
        "lamp-front.png;semi-lamp;Lamp, first try\n"
        f"{sample / 'catalogue' / 'brick-tile.png'};semi-tile;Brick tile\n"
        "lamp-front.png;;No product\n"
        "gs://bucket/photo.jpg;semi-cloud;In the cloud\n"
        "lamp-back.png;semi-lamp;Moon lamp\n")
    result = lookalike("ingest", str(tmp_path / "excel.csv"), server=service)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    warning = ("warning: product 'semi-lamp': its rows disagree (title on excel.csv:2, "
               "excel.csv:6)")
    assert warning in out and out.index(warning) < out.index("3 stored"), out
    assert "3 stored" in out and "2 failed" in out, out
    assert "excel.csv:4: product_id is empty" in out, out
    assert "excel.csv:5: unsupported URI scheme 'gs'" in out, out

    found = lookalike("search", str(tmp_path / "lamp-back.png"), "--json", "-k", "10",
                      server=service)
    titles = {m["productId"]: m.get("title") for m in json.loads(found.stdout)["matches"]}
    assert titles.get("semi-lamp") == "Moon lamp", titles  # the product's one record: the last row's
    assert "semi-cloud" not in titles and "" not in titles


def test_ingest_without_a_product_column_is_one_line_and_sends_nothing(service: str, sample: Path,
                                                                        tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(f"filename;name\n{sample / 'catalogue' / 'moon-lamp.png'};Lamp\n")
    before = lookalike("stats", server=service)
    result = lookalike("ingest", str(tmp_path / "c.csv"), server=service)
    out = (result.stdout + result.stderr).strip()
    assert result.returncode == 2 and len(out.splitlines()) == 1, out
    assert out.startswith("c.csv: the header (filename, name) has no product column (name it "
                          "product_id, sku, product, product_code)"), out
    assert before.returncode == 0 and lookalike("stats", server=service).stdout == before.stdout


def test_ingest_check_lists_what_would_fail_and_needs_no_service(sample: Path, tmp_path: Path) -> None:
    from lookalike.tools.local import free_port

    down = f"127.0.0.1:{free_port()}"  # nothing listens there: --check must not call it
    lamp = sample / "catalogue" / "moon-lamp.png"
    (tmp_path / "page.jpg").write_text("<html>not a photo</html>")
    (tmp_path / "c.csv").write_text(f"image_uri,product_id\n{lamp},lamp\nmissing.jpg,ghost\n"
                                    "page.jpg,page\n")
    result = lookalike("ingest", str(tmp_path / "c.csv"), "--check", server=down)
    out = " ".join(result.stdout.split())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3 images of 3 products in 1 product set" in out and "2 rows would fail" in out, out
    assert f"c.csv:3 │ ghost │ missing.jpg │ no such file: {tmp_path}" in out, result.stdout
    assert "c.csv:4 │ page │ page.jpg │ not a recognised image" in out, result.stdout

    (tmp_path / "ok.csv").write_text(f"image_uri,product_id\n{lamp},lamp\n")
    clean = lookalike("ingest", str(tmp_path / "ok.csv"), "--check", server=down)
    assert clean.returncode == 0 and "no problems found" in clean.stdout, clean.stdout + clean.stderr


def test_ingest_refuses_a_product_set_name_that_is_not_one(sample: Path) -> None:
    from lookalike.tools.local import free_port

    result = lookalike("ingest", str(sample / "catalogue.csv"), "--product-set", "no way!",
                       server=f"127.0.0.1:{free_port()}")
    out = (result.stdout + result.stderr).strip()
    assert result.returncode == 2 and len(out.splitlines()) == 1, out
    assert out.startswith("--product-set 'no way!' is not a set name: 1-64 letters"), out
