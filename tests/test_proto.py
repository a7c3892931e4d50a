import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATED = ["lookalike_pb2.py", "lookalike_pb2.pyi", "lookalike_pb2_grpc.py"]


def test_generated_stubs_match_the_proto(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO / 'proto'}",
         f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
         str(REPO / "proto" / "lookalike" / "v1" / "lookalike.proto")],
        check=True,
    )
    for name in GENERATED:
        fresh = (tmp_path / "lookalike" / "v1" / name).read_text()
        committed = (REPO / "lookalike" / "v1" / name).read_text()
        assert fresh == committed, f"lookalike/v1/{name} is stale: run `make proto`"
