"""Embedding worker entrypoint: a Celery worker consuming ingest chunks from Redis."""

from lookalike.cli import app

if __name__ == "__main__":
    app(["worker"], prog_name="lookalike")
