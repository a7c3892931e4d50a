"""Metrics and logs of a running service, read the way Prometheus and a log shipper would."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import httpx
import pytest

from lookalike.client import Client
from lookalike.model.registry import DEFAULT_MODEL, model_id
from lookalike.tools import bulk
from lookalike.tools.catalogue import read_catalogue
from lookalike.v1 import lookalike_pb2 as pb


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels}")


def test_metrics_count_requests_stages_and_ingest(running, sample: Path) -> None:
    with Client(running.target) as client:
        bulk.ingest(client, read_catalogue(sample / "catalogue.csv"))
        photo = (sample / "queries" / "coffee-cup-1.jpg").read_bytes()
        for _ in range(3):
            client.search(photo, top_k=3)
        with pytest.raises(grpc.RpcError):
            client.search(b"not an image")
    text = httpx.get(running.metrics_url, timeout=5).text
    assert metric(text, "lookalike_grpc_requests_total", method="Search", code="OK") == 3
    assert metric(text, "lookalike_grpc_requests_total", method="Search",
                  code="INVALID_ARGUMENT") == 1
    assert metric(text, "lookalike_grpc_request_seconds_count", method="Search") == 4
    for stage, count in (("decode", 4), ("embed", 3), ("search", 3)):
        assert metric(text, "lookalike_stage_seconds_count", stage=stage) == count
    assert metric(text, "lookalike_ingest_items_total", outcome="stored") == 14
    assert metric(text, "lookalike_queue_depth") == 0
    assert metric(text, "lookalike_model_info", model=model_id(DEFAULT_MODEL)) == 1


def test_logs_are_json_with_request_and_job_ids(running, sample: Path) -> None:
    request = pb.SubmitIngestRequest(
        items=next(bulk.batches(read_catalogue(sample / "catalogue.csv"))))
    with Client(running.target) as client:
        response = client.stub.SubmitIngest(request, metadata=[("x-request-id", "req-123")],
                                            timeout=30)
        client.wait_job(response.job_id)
    lines = [json.loads(line) for line in running.log.read_text().splitlines()
             if line.startswith("{")]
    assert lines and all({"time", "level", "name", "message"} <= line.keys() for line in lines)
    assert any(line.get("id") == "req-123" and "queued" in line["message"] for line in lines)
    assert any(line.get("id") == response.job_id and "stored" in line["message"]
               for line in lines)


def test_metrics_listen_where_the_service_does(running) -> None:
    """The service listens on 127.0.0.1: so do its metrics (LOOKALIKE_METRICS_HOST unset)."""
    assert httpx.get(running.metrics_url, timeout=5).status_code == 200
    elsewhere = running.metrics_url.replace("127.0.0.1", "127.0.0.2")
    with pytest.raises(httpx.ConnectError):
        httpx.get(elsewhere, timeout=5)
