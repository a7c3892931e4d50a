from lookalike_services.query.main import main

main()
