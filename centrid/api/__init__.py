"""The HTTP API of CONTRACT.md: models, handlers, routes, OpenAPI."""
