"""Keep a folder of cached files under a size: the least recently used go first.

Both caches of the teacher's computer use it: the PDFs made of office documents
(:mod:`media.office`) and the pictures rendered from SVG (:mod:`media.svg`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path


def trim_to_size(
    files: Iterable[Path],
    max_bytes: int,
    *,
    keep: Path | None = None,
    used_at: Callable[[os.stat_result], float] = lambda st: st.st_mtime,
    remove: Callable[[Path], None] = lambda path: path.unlink(missing_ok=True),
) -> None:
    """Remove the least recently used of ``files`` until they hold at most ``max_bytes``.

    Args:
        files: the cache's files (a file removed meanwhile is passed over).
        max_bytes: the cache's size limit.
        keep: a file that stays whatever its age (the one just made).
        used_at: when a file was last used, from its ``stat`` (modification time by
            default; a cache that refreshes access times on use passes ``st_atime``).
        remove: deletes one file and whatever belongs to it.
    """
    entries = []
    for path in files:
        try:
            st = path.stat()
        except OSError:
            continue
        entries.append((used_at(st), st.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= max_bytes:
            break
        if path == keep:
            continue
        remove(path)
        total -= size
