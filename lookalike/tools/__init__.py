"""Client-side tools behind the CLI: catalogue files, bulk ingest, evaluation and its report,
contact sheets, the sample catalogue and a local service for demos and tests."""
