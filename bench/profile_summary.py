"""A short, readable summary of a py-spy profile (raw collapsed stacks).

Two views: each sample attributed to the innermost part of the request
path on its stack (shares add up to 100%), and the top functions by self
time.
"""

from __future__ import annotations

from collections import Counter

# (label, substring of a frame "function (file:line)"), checked leaf first.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("JWT verification (PyJWT)", ("jwt/",)),
    ("Piccolo query building", ("piccolo/query", "piccolo/querystring", "piccolo/columns")),
    ("pydantic validation / dump", ("pydantic",)),
    ("JSON (orjson)", ("orjson",)),
    ("asyncpg (protocol, pool)", ("asyncpg",)),
    ("HTTP protocol (uvicorn: h11 / httptools)", ("h11", "httptools")),
    ("logging (access log line)", ("logging/", "centrid/logs")),
    ("Starlette routing / middleware", ("starlette/",)),
    ("centrid request scope", ("centrid/request",)),
    ("centrid handlers / queries", ("centrid/api", "centrid/queries")),
    ("asyncio / uvloop event loop", ("asyncio/", "uvloop")),
)


def _stacks(raw: str) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def _category(frames: tuple[str, ...]) -> str:
    for frame in reversed(frames):
        for label, needles in CATEGORIES:
            if any(n in frame for n in needles):
                return label
    return "other"


def summarize(raw: str, top: int = 12) -> str:
    stacks = _stacks(raw)
    total = sum(stacks.values()) or 1
    categories: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for frames, count in stacks.items():
        categories[_category(frames)] += count
        leaves[frames[-1].split(" (")[0] + " (" + frames[-1].rpartition("/")[2]] += count
    lines = [f"{total:,} samples holding the GIL, each counted for the innermost part on its stack:",
             "", "| share | part |", "|---|---|"]
    lines += [f"| {count / total * 100:.1f}% | {label} |" for label, count in categories.most_common()]
    lines += ["", "Top functions by self time:", "", "| self | function |", "|---|---|"]
    lines += [f"| {count / total * 100:.1f}% | `{name}` |" for name, count in leaves.most_common(top)]
    return "\n".join(lines)
