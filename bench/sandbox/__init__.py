"""Sandbox throughput: `GET /v1.0/users/{id}?$select=...` next to a trivial route, over TLS, with wrk."""
