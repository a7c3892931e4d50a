"""The gRPC API: the servicer, its server (interceptors, health, reflection, TLS), access keys and
request validation. Errors become status codes in one place (interceptors.ErrorStatus)."""
