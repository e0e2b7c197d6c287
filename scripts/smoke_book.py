"""Book one appointment in the demo organization through the public API, as a partner would:
find the first vacant start in the coming days, book it, print its caseId. Standard library
only, so it runs on any host with python3 (scripts/container-smoke.sh calls it).

    python3 scripts/smoke_book.py --base-url http://127.0.0.1:8000 --token "$TOKEN"

Answers 503 (the database restarting) are retried until --retry-s has passed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

# examples/demo.yaml: the demo-partner application, Passport renewal, its 20-minute type.
APPLICATION = "6f1c2a4e-0000-4000-8000-000000000101"
SERVICE = "6f1c2a4e-0000-4000-8000-000000000201"
SERVICE_TYPE = "6f1c2a4e-0000-4000-8000-000000000301"
DAYS_AHEAD = 14


class Unavailable(Exception):
    """A 503: the server is up but its database is not (yet)."""


def call(base: str, token: str, method: str, path: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (the base URL is the operator's)
        f"{base}/{APPLICATION}{path}", data=data, method=method
    )
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.load(response)
    except urllib.error.HTTPError as error:
        if error.code == 503:
            raise Unavailable(error.read().decode(errors="replace")) from None
        raise SystemExit(f"{method} {path}: HTTP {error.code} {error.read().decode()}") from None


def book_first_vacancy(base: str, token: str) -> str:
    today = datetime.date.today()
    for offset in range(1, DAYS_AHEAD + 1):
        day = (today + datetime.timedelta(days=offset)).isoformat()
        calendar = f"/calendars/{SERVICE}/{day}/0"
        vacancies = call(base, token, "GET", f"{calendar}/vacancies?serviceTypeId={SERVICE_TYPE}")
        if vacancies["slots"]:
            body = {
                "serviceTypeId": SERVICE_TYPE,
                "startTime": vacancies["slots"][0],
                "channel": "FaceToFace",
            }
            booked = call(base, token, "POST", f"{calendar}/appointments", body)
            return str(booked["caseId"])
    raise SystemExit(f"no vacancy in the next {DAYS_AHEAD} days")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--token", required=True, help="a dev token of demo-partner")
    parser.add_argument("--retry-s", type=float, default=30.0, help="how long to retry a 503")
    args = parser.parse_args()
    deadline = time.monotonic() + args.retry_s
    while True:
        try:
            print(book_first_vacancy(args.base_url.rstrip("/"), args.token))
            return 0
        except (Unavailable, urllib.error.URLError, ConnectionError) as error:
            if time.monotonic() >= deadline:
                print(f"still unavailable after {args.retry_s:.0f} s: {error}", file=sys.stderr)
                return 1
            time.sleep(1)


if __name__ == "__main__":
    raise SystemExit(main())
