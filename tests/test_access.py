"""Who may do what: API keys with read and write rights, TLS, and no start without either
keys or an explicit unauthenticated mode."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import trustme

from lookalike.client import Client
from lookalike.local import local_service
from lookalike.v1 import lookalike_pb2 as pb


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    return folder / "cert.pem", folder / "key.pem", folder / "ca.pem"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, service_env: dict[str, str],
            ca) -> Iterator[tuple[str, str]]:
    cert, key, authority = ca
    env = {**service_env, "LOOKALIKE_AUTH": "keys", "LOOKALIKE_READ_KEYS": "reader-1, reader-2",
           "LOOKALIKE_WRITE_KEYS": "writer-1", "LOOKALIKE_TLS_CERT": str(cert),
           "LOOKALIKE_TLS_KEY": str(key)}
    with local_service(tmp_path_factory.mktemp("secured"), env=env,
                       client_options={"tls_ca": str(authority)}) as target:
        yield target, str(authority)


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def test_keys_grant_read_and_write(secured, sample: Path) -> None:
    target, authority = secured
    image = (sample / "catalogue" / "coffee-cup.png").read_bytes()
    item = pb.IngestItem(product_id="cup", image_id="a", image=image)
    with Client(target, tls_ca=authority) as anonymous:
        assert anonymous.healthy()  # probes need no key
        assert code_of(lambda: anonymous.search(image)) == grpc.StatusCode.UNAUTHENTICATED
    with Client(target, tls_ca=authority, api_key="wrong") as stranger:
        assert code_of(lambda: stranger.stats()) == grpc.StatusCode.UNAUTHENTICATED
    with Client(target, tls_ca=authority, api_key="reader-2") as reader:
        assert reader.search(image).matches == []
        assert code_of(lambda: reader.submit([item])) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(lambda: reader.delete(["cup"])) == grpc.StatusCode.PERMISSION_DENIED
    with Client(target, tls_ca=authority, api_key="writer-1") as writer:
        assert writer.wait_job(writer.submit([item]), timeout_s=60).done == 1
        assert writer.search(image).matches[0].product_id == "cup"
        assert writer.delete(["cup"]) == 1


def test_plaintext_client_cannot_talk_to_tls(secured) -> None:
    target, _ = secured
    with Client(target, api_key="reader-1", timeout_s=5) as plain:
        assert not plain.healthy()
        assert code_of(lambda: plain.stats()) == grpc.StatusCode.UNAVAILABLE


def test_no_keys_and_no_explicit_opt_out_refuses_to_start(tmp_path: Path) -> None:
    env = {**os.environ, "LOOKALIKE_AUTH": "keys", "LOOKALIKE_READ_KEYS": "",
           "LOOKALIKE_WRITE_KEYS": "", "LOOKALIKE_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "lookalike", "serve"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "no API keys configured" in result.stdout and "LOOKALIKE_AUTH=none" in result.stdout
