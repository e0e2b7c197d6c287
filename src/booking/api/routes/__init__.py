"""One router per resource; routers parse, authorize and hand typed commands to the service."""
