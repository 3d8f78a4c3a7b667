"""Checks that the lock (requirements.txt, requirements-dev.txt) still matches pyproject.toml.

`make lint` runs it first, so a dependency added to, raised in or dropped from pyproject.toml without
`make lock` fails at once, naming the package and what to run. It reads files only: no resolver, no network.

    python -m tests.lock_check
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = "requirements.txt"
DEV_LOCK = "requirements-dev.txt"
FIX = "Run `make lock` and commit pyproject.toml with requirements.txt and requirements-dev.txt."

# `name==version` at the start of a line; uv writes one per package, then its hashes and `# via` lines.
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_VIA_PYPROJECT = re.compile(r"^#\s+(?:via\s+)?[A-Za-z0-9._-]+(?:\[[^\]]*\])? \(pyproject\.toml\)$")


@dataclass
class Pin:
    """One package of a lock file: its version, whether it has hashes, and whether pyproject.toml asks for it."""

    version: Version
    hashed: bool = False
    direct: bool = False


@dataclass
class Lock:
    """A lock file's pins by canonical name."""

    name: str
    pins: dict[NormalizedName, Pin] = field(default_factory=dict)


def parse_lock(name: str, text: str) -> Lock:
    """Reads the pins of a requirements file written by `uv pip compile --generate-hashes`."""
    lock = Lock(name)
    current: Pin | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if match := _PIN.match(raw):
            current = Pin(Version(match[2]))
            lock.pins[canonicalize_name(match[1])] = current
        elif current is not None and line.startswith("--hash="):
            current.hashed = True
        elif current is not None and _VIA_PYPROJECT.match(line):
            current.direct = True
    return lock


def check_lock(lock: Lock, requirements: Iterable[Requirement]) -> list[str]:
    """What is wrong with one lock file against the requirements pyproject.toml gives it; empty when it matches."""
    problems = []
    wanted = {canonicalize_name(r.name): r for r in requirements}
    for name, requirement in sorted(wanted.items()):
        pin = lock.pins.get(name)
        if pin is None:
            problems.append(f"{lock.name}: {requirement} is in pyproject.toml but not pinned")
        elif requirement.specifier and not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{lock.name}: pins {name}=={pin.version}, outside pyproject.toml's {requirement}")
    for name, pin in sorted(lock.pins.items()):
        if pin.direct and name not in wanted:
            problems.append(f"{lock.name}: pins {name}=={pin.version} for pyproject.toml, which no longer asks for it")
        if not pin.hashed:
            problems.append(f"{lock.name}: {name}=={pin.version} has no hashes")
    return problems


def check_agreement(runtime: Lock, dev: Lock) -> list[str]:
    """The dev lock must install the server's packages at the server's versions, so tests run what deploys."""
    problems = []
    for name, pin in sorted(runtime.pins.items()):
        if name not in dev.pins:
            problems.append(f"{dev.name} lacks {name}, which {runtime.name} pins")
        elif dev.pins[name].version != pin.version:
            problems.append(f"{dev.name} pins {name}=={dev.pins[name].version} but {runtime.name} pins {pin.version}")
    return problems


def check(pyproject: str, runtime_text: str, dev_text: str) -> list[str]:
    """Every problem with both lock files against the text of pyproject.toml."""
    project = tomllib.loads(pyproject)["project"]
    runtime_requirements = [Requirement(r) for r in project["dependencies"]]
    dev_requirements = [Requirement(r) for r in project.get("optional-dependencies", {}).get("dev", [])]
    runtime = parse_lock(RUNTIME_LOCK, runtime_text)
    dev = parse_lock(DEV_LOCK, dev_text)
    return (
        check_lock(runtime, runtime_requirements)
        + check_lock(dev, runtime_requirements + dev_requirements)
        + check_agreement(runtime, dev)
    )


def main() -> int:
    """Prints what does not match and the command that fixes it; exit status 1 then, else 0."""
    problems = check(
        (REPO / "pyproject.toml").read_text(),
        (REPO / RUNTIME_LOCK).read_text(),
        (REPO / DEV_LOCK).read_text(),
    )
    for problem in problems:
        print(f"lock check: {problem}", file=sys.stderr)
    if problems:
        print(f"lock check: the lock does not match pyproject.toml. {FIX}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
