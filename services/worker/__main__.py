from lookalike_services import run
from lookalike_services.worker.main import main

run(main)
