"""Text, image and fused search (SearchRequest.text) measured on a benchmark folder, through
the real service (a fresh embedded one unless --server is given).

    .venv/bin/python scripts/text_search_eval.py ../shared/data/grocerystore_dev \
        --json text-search.json

The gallery is ingested as `lookalike eval` ingests it (read_catalogue), each product with
  title       = its product_id with "-" as spaces ("Arla-Standard-Milk" -> "Arla Standard Milk")
  description = products.csv's description
  category    = gallery.csv's category (the fine class).
A query photo's words are a short shopper query derived from its ground-truth product only:
its fine class, products.csv's `category`, with "-" as a space ("Melon" for Cantaloupe,
"Oat Milk" for Oatly-Oat-Milk). The coarse `top_category` ("Fruit") would name a dozen
products; the fine class still names several (6 milks, 4 melons), so text alone ties them.

Per query: text alone (no photo), the photo alone (stage 2 off, as in fused search, and
with the server's stage 2 default), and the photo with its words (fused). Recall@1/@5.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from lookalike.client import Client
from lookalike.tools import bulk
from lookalike.tools import evaluate as ev
from lookalike.tools.catalogue import read_catalogue
from lookalike.tools.local import local_service

RUNS = ("text", "image (stage 2 off)", "image (server default)", "image + text (fused)")


def products(bench: Path) -> dict[str, dict[str, str]]:
    with (bench / "products.csv").open(newline="") as f:
        return {r["product_id"]: r for r in csv.DictReader(f)}


def shopper_query(product: dict[str, str]) -> str:
    return product["category"].replace("-", " ")


def measure(client: Client, bench: Path, limit: int | None) -> dict:
    known = products(bench)
    gallery = [replace(e, title=e.product_id.replace("-", " "),
                       description=known.get(e.product_id, {}).get("description", ""))
               for e in read_catalogue(bench)]
    outcome = bulk.ingest(client, gallery)
    if outcome.failures:
        raise SystemExit(f"{len(outcome.failures)} gallery images failed to ingest")
    top_k = 10
    ranks: dict[str, list[int | None]] = {run: [] for run in RUNS}
    seconds: dict[str, float] = dict.fromkeys(RUNS, 0.0)
    for path, expected in ev.read_queries(bench, limit):
        photo, words = path.read_bytes(), shopper_query(known[expected])
        for run, call in (
                ("text", lambda: client.search(b"", top_k, text=words)),
                ("image (stage 2 off)", lambda: client.search(photo, top_k, verify="off")),
                ("image (server default)", lambda: client.search(photo, top_k)),
                ("image + text (fused)", lambda: client.search(photo, top_k, text=words))):
            started = time.perf_counter()
            ids = [m.product_id for m in call().matches]
            seconds[run] += time.perf_counter() - started
            ranks[run].append(ids.index(expected) + 1 if expected in ids else None)
    n = len(ranks["text"])
    return {"bench": bench.name, "queries": n, "products": len(known),
            "query_text": "products.csv category (fine class), '-' as space",
            **{run: {"recall@1": sum(r == 1 for r in rs) / n,
                     "recall@5": sum(bool(r and r <= 5) for r in rs) / n,
                     "ms_per_query": 1000 * seconds[run] / n} for run, rs in ranks.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bench", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="only the first N queries")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--server", default=None,
                        help="a running service whose catalogue holds only this gallery")
    args = parser.parse_args()
    if args.server:
        with Client(args.server) as client:
            result = measure(client, args.bench, args.limit)
    else:
        with tempfile.TemporaryDirectory(prefix="lookalike-text-eval-") as tmp:
            with local_service(Path(tmp)) as target, Client(target) as client:
                result = measure(client, args.bench, args.limit)
    print(f"{result['bench']}: {result['queries']} queries, {result['products']} products; "
          f"query words: {result['query_text']}")
    print(f"{'search':<24} {'R@1':>6} {'R@5':>6} {'ms/query':>9}")
    for run in RUNS:
        r = result[run]
        print(f"{run:<24} {r['recall@1']:>6.3f} {r['recall@5']:>6.3f} {r['ms_per_query']:>9.1f}")
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
