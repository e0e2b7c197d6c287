"""wrk, the load generator of `make bench`: finding (or installing) it, and reading the report
its Lua scripts print (lines BENCH_SUMMARY, BENCH_LATENCY, BENCH_STATUS thread=...) into a
WrkResult."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False)
        wrk = shutil.which("wrk")
        if wrk:
            return wrk
    print(
        "wrk is not installed. Install it and run again:\n"
        "  Debian/Ubuntu: sudo apt-get install -y wrk\n"
        "  macOS:         brew install wrk\n"
        "  from source:   https://github.com/wg/wrk",
        file=sys.stderr,
    )
    raise SystemExit(2)


@dataclass
class WrkResult:
    name: str
    target: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    requests: int
    ok_2xx: int
    conflict_409: int
    other: int
    statuses: dict[str, int]
    socket_errors: dict[str, int]
    per_thread: list[dict[str, int]]
    server_cpu_ms_per_request: float
    load_average: list[float]
    seconds: int
    output: str = field(repr=False, default="")

    def line(self) -> str:
        return (
            f"{self.name:<28} {self.rps:9.1f} req/s   p50 {self.p50_ms:7.2f} ms   "
            f"p99 {self.p99_ms:7.2f} ms   2xx {self.ok_2xx:6d}   409 {self.conflict_409:4d}   "
            f"other {self.other:4d}   cpu {self.server_cpu_ms_per_request:.2f} ms/req"
        )

    def to_json(self) -> dict[str, Any]:
        """Every figure, without wrk's raw output."""
        data = asdict(self)
        data.pop("output")
        return data


SUMMARY = re.compile(r"^BENCH_SUMMARY (.*)$", re.M)
LATENCY = re.compile(r"^BENCH_LATENCY (.*)$", re.M)
STATUS = re.compile(r"^BENCH_STATUS thread=(\d+)(.*)$", re.M)


def _fields(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in (item.split("=") for item in text.split())}


def parse_wrk(name: str, target: str, output: str, seconds: int, cpu_seconds: float) -> WrkResult:
    summary_match, latency_match = SUMMARY.search(output), LATENCY.search(output)
    if not summary_match or not latency_match:
        raise RuntimeError(f"wrk output without the bench report:\n{output}")
    summary, latency = _fields(summary_match[1]), _fields(latency_match[1])
    per_thread: list[dict[str, int]] = []
    statuses: dict[str, int] = {}
    for _, counts in STATUS.findall(output):
        thread = {k: int(v) for k, v in _fields(counts).items()}
        per_thread.append(thread)
        for status, count in thread.items():
            statuses[status] = statuses.get(status, 0) + count
    ok = sum(n for s, n in statuses.items() if s.startswith("2"))
    conflict = statuses.get("409", 0)
    errors = {k: int(summary[k]) for k in ("connect", "read", "write", "timeout")}
    return WrkResult(
        name=name,
        target=target,
        rps=round(summary["requests"] / (summary["duration_us"] / 1e6), 1),
        p50_ms=latency["p50_us"] / 1000,
        p90_ms=latency["p90_us"] / 1000,
        p99_ms=latency["p99_us"] / 1000,
        max_ms=latency["max_us"] / 1000,
        mean_ms=round(latency["mean_us"] / 1000, 3),
        requests=int(summary["requests"]),
        ok_2xx=ok,
        conflict_409=conflict,
        other=sum(statuses.values()) - ok - conflict + sum(errors.values()),
        statuses=dict(sorted(statuses.items())),
        socket_errors=errors,
        per_thread=per_thread,
        server_cpu_ms_per_request=round(cpu_seconds * 1000 / max(1, int(summary["requests"])), 3),
        load_average=[round(x, 2) for x in os.getloadavg()],
        seconds=seconds,
        output=output,
    )
