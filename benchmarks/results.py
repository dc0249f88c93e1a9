"""Shared by the benchmark scripts: describe the machine and replace one section of docs/RESULTS.md.

Each script owns one section, delimited by ``<!-- section: KEY -->`` and ``<!-- end: KEY -->`` and opening
with its ``## title``; re-running a script replaces its section and keeps every other one.
"""

from __future__ import annotations

import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md"
HEADER = (
    "# docalign: measured results\n\nEvery figure below was written by the benchmark script named in "
    "its section, with the command and the machine.\n"
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(extra: str = "") -> str:
    """CPU model, cores, memory, Python, the load average and the date, for the record."""
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 2**20:.0f} GiB memory"
    except (OSError, ValueError, IndexError):
        pass
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    extra = f", {extra}" if extra else ""
    return (
        f"{os.cpu_count()} cores ({cpu_model()}){memory}, Python {platform.python_version()}{extra}; "
        f"load average {load} (1/5/15 min) when written; {when}"
    )


def write_section(key: str, title: str, body: str, path: Path = RESULTS) -> None:
    """Replace section ``key`` of ``path`` with ``## title`` + ``body`` (append it when absent)."""
    start, end = f"<!-- section: {key} -->", f"<!-- end: {key} -->"
    block = f"{start}\n## {title}\n\n{body.strip()}\n{end}\n"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
