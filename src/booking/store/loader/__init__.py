"""Configuration as code: organizations and everything they configure, read from a YAML file.

    organizations:
      - id: 6f1c2a4e-0000-4000-8000-000000000001
        name: Demo City Services
        timeZone: Europe/London
        ...

(examples/demo.yaml is a complete, commented example.) Three steps, each usable on its own, each
in its own module:

- `document`: the pydantic models of the file (`ConfigDocument`): camelCase keys, unknown keys
  rejected, every rule the file alone can break is checked.
- `reading`: `parse_config(text)` turns YAML text into a validated `ConfigDocument` without
  touching the database.
- `applying`: `apply_config(conn, document)` creates or updates every entity inside the caller's
  transaction and never commits; `load_file(engine, path)` reads, parses and applies in one
  transaction: a bad file changes nothing.

Every failure is a `ConfigFileError` whose message names the YAML line (syntax) or the key path
(e.g. `organizations[0].services[1].calendarUnits[0].workingHours.mon[1]`) and the rule.
"""

from booking.store.loader.applying import LoadSummary, apply_config, load_file
from booking.store.loader.document import ConfigDocument, ConfigFileError
from booking.store.loader.reading import parse_config

__all__ = [
    "ConfigDocument",
    "ConfigFileError",
    "LoadSummary",
    "apply_config",
    "load_file",
    "parse_config",
]
