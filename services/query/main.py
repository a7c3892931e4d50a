"""Query service entrypoint: gRPC Search/Ingest API (with the embedded store: worker too)."""

from lookalike.cli import app

if __name__ == "__main__":
    app(["serve"], prog_name="lookalike")
