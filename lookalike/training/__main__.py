"""python -m lookalike.training DATA OUT [options]: same as `lookalike train`."""

from lookalike.training.cli import main

main(prog="python -m lookalike.training")
