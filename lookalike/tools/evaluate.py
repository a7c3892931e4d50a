"""Retrieval quality on a benchmark folder, measured through the real service.

Layout: gallery/ + gallery.csv (gallery_file, product_id, category) and queries/ +
ground_truth.csv (query_file, product_id). A query's score for a product is its best
gallery image (the service groups by product); mAP = MRR with one correct product.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.client import Client


@dataclass
class Result:
    query: str
    expected: str
    ranked: list[str]
    category: str = ""
    top: list = field(default_factory=list)  # the first matches, for the misses sheet
    stage1_rank: int | None = None  # the expected product's rank in the global shortlist
    server_ms: float = 0.0

    @property
    def rank(self) -> int | None:
        return self.ranked.index(self.expected) + 1 if self.expected in self.ranked else None


SHORTLIST_K = (1, 5, 10, 20, 50)


@dataclass
class Report:
    model: str
    products: int
    results: list[Result] = field(default_factory=list)
    verify: str = ""

    def recall(self, k: int, results: list[Result] | None = None) -> float:
        results = self.results if results is None else results
        return sum(1 for r in results if r.rank and r.rank <= k) / max(len(results), 1)

    def mean_average_precision(self) -> float:
        return sum(1 / r.rank for r in self.results if r.rank) / max(len(self.results), 1)

    def shortlist_recall(self, k: int) -> float:
        """Stage 1 alone: the expected product among the global vector's first k (the
        ceiling of stage 2 with a shortlist of k)."""
        hits = sum(1 for r in self.results if r.stage1_rank and r.stage1_rank <= k)
        return hits / max(len(self.results), 1)

    def summary(self) -> dict[str, float | int | str]:
        times = sorted(r.server_ms for r in self.results) or [0.0]
        return {"recall@1": self.recall(1), "recall@5": self.recall(5),
                "recall@10": self.recall(10), "mAP": self.mean_average_precision(),
                **{f"shortlist_recall@{k}": self.shortlist_recall(k) for k in SHORTLIST_K},
                "server_ms_p50": times[len(times) // 2],
                "server_ms_p99": times[min(len(times) - 1, int(len(times) * 0.99))],
                "verify": self.verify,
                "queries": len(self.results), "products": self.products, "model": self.model}

    def worst(self, n: int) -> list[Result]:
        """The misses whose correct product ranked lowest (not found at all first)."""
        misses = [r for r in self.results if r.rank != 1]
        return sorted(misses, key=lambda r: -(r.rank or 10**6))[:n]

    def by_category(self) -> dict[str, tuple[int, float, float]]:
        groups: dict[str, list[Result]] = defaultdict(list)
        for r in self.results:
            groups[r.category].append(r)
        return {c: (len(rs), self.recall(1, rs), self.recall(5, rs))
                for c, rs in sorted(groups.items())}


def read_queries(bench: Path, limit: int | None = None) -> list[tuple[Path, str]]:
    with (bench / "ground_truth.csv").open(newline="") as f:
        rows = [(bench / "queries" / r["query_file"], r["product_id"]) for r in csv.DictReader(f)]
    return rows[:limit] if limit else rows


def product_categories(bench: Path) -> dict[str, str]:
    with (bench / "gallery.csv").open(newline="") as f:
        return {r["product_id"]: r.get("category", "") for r in csv.DictReader(f)}


def run(client: Client, bench: Path, limit: int | None = None,
        on_query: Callable[[], None] = lambda: None, verify: str = "") -> Report:
    categories = product_categories(bench)
    stats = client.stats()
    report = Report(model=f"{stats.model_name}@{stats.model_version}", products=stats.products)
    top_k = min(max(stats.products, 10), 100)
    for path, expected in read_queries(bench, limit):
        response = client.search(path.read_bytes(), top_k=top_k, verify=verify)
        report.verify = response.verify or "off"
        stage1 = {m.product_id: m.stage1_rank for m in response.matches}
        report.results.append(Result(str(path), expected, [m.product_id for m in response.matches],
                                     categories.get(expected, ""), list(response.matches[:3]),
                                     stage1.get(expected) or None, response.server_ms))
        on_query()
    return report
