"""The baseline of a comparison: the project at another revision, checked out beside this one, and the table that
sets its figures beside this checkout's.

    with checkout("main~3") as root:    # a temporary git worktree of that revision
        ...                              # run its server from `root`, and this checkout's from ROOT
    print(side_by_side([("complete orders/s", [12.1, 13.0, 12.5], [70.2, 71.9, 69.0])]))
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.figures import median, table
from bench.processes import ROOT


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def revision(rev: str) -> str:
    """The short commit id of `rev`; fails if there is no such commit."""
    return _git("rev-parse", "--verify", "--short", f"{rev}^{{commit}}")


def working_tree() -> str:
    """This checkout as a revision: its commit, and whether it has changes not committed."""
    changed = _git("status", "--porcelain", "--untracked-files=no")
    return f"the working tree at {revision('HEAD')}" + (", with changes not committed" if changed else "")


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """The project at `rev` in a temporary git worktree, with this checkout's `.venv`; removed after, also on error."""
    folder = Path(tempfile.mkdtemp(prefix="kiosk-baseline-"))
    added = False
    try:
        _git("worktree", "add", "--detach", str(folder), revision(rev))
        added = True
        (folder / ".venv").symlink_to(ROOT / ".venv")
        yield folder
    finally:
        if not added:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            # --force: the worktree holds files git does not track (the .venv link, bytecode).
            try:
                _git("worktree", "remove", "--force", str(folder))
            except subprocess.CalledProcessError as exc:
                print(f"the baseline's git worktree {folder} is left: {exc.stderr.strip()}", file=sys.stderr)


def _cell(value: float) -> str:
    return "–" if value != value else f"{value:.1f}"


def _spread(values: Sequence[float]) -> str:
    return f"{_cell(min(values))}–{_cell(max(values))}"


def _ratio(new: float, old: float) -> str:
    return f"{new / old:.2f}" if old and old == old and new == new else "–"


def side_by_side(measures: Sequence[tuple[str, Sequence[float], Sequence[float]]]) -> str:
    """A Markdown table of each measure's baseline and new runs: median, spread (min–max) and the ratio new/baseline."""
    rows = []
    for label, old, new in measures:
        rows.append(
            [
                label,
                _cell(median(old)),
                _spread(old),
                _cell(median(new)),
                _spread(new),
                _ratio(median(new), median(old)),
            ]
        )
    header = ["measure", "baseline median", "baseline min–max", "new median", "new min–max", "new / baseline"]
    return table(header, rows)
