from lookalike_services.worker.main import main

main()
