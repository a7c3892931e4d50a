from lookalike_services import run
from lookalike_services.query.main import main

run(main)
