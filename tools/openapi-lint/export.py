"""Write the OpenAPI document the server publishes (/openapi.json) to the file named, for the
linter. The app is built without running its lifespan, so no database is needed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from booking.api.app import create_app
from booking.settings import JwtMode, Settings

# Nothing here verifies a token or opens a connection: the settings and URL are placeholders.
app = create_app(Settings(jwt_mode=JwtMode.DEV), "postgresql+asyncpg://unused@/unused")
Path(sys.argv[1]).write_text(json.dumps(app.openapi(), indent=2) + "\n", encoding="utf-8")
