"""Kubernetes volume facts the engine can check for itself.

A ConfigMap mounted with ``subPath`` is a bind mount of one file: kubelet never updates it, so
hot reload silently does nothing. The file being a mount point of its own is the tell.
"""

from __future__ import annotations

import os

from ._mounts import mount_table

__all__ = ["is_file_mount"]


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str) -> set[str]:
    """The mount points listed in a ``/proc/<pid>/mountinfo`` text (5th field of each line)."""
    points = set()
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.add(_unescape(fields[4]))
    return points


def is_file_mount(path: str, mountinfo: str | None = None) -> bool:
    """True when ``path`` itself (not its directory) is a mount point: a ``subPath`` mount."""
    if mountinfo is None:  # this process's mounts, as `_mounts` keeps them current
        table = mount_table()
        return table is not None and os.path.abspath(path) in table.points
    return os.path.abspath(path) in mount_points(mountinfo)
