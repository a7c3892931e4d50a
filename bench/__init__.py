"""Performance harness for lookalike: `make bench` runs bench/run.py."""
