"""HTTP: app factory, routers, request/response schemas, auth dependency, error mapping."""
