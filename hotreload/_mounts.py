"""Which file system a path is on, and whether inotify can be trusted there.

NFS, CIFS/SMB, 9p, virtiofs and most FUSE mounts (sshfs, gcsfuse, Docker Desktop's
grpcfuse/osxfs bind mounts) deliver no inotify event for a change made by another machine (or
by the host, for a VM's shared folder): the watcher then sees nothing, and only the safety poll
would notice, a minute later. Linux says what each mount is in ``/proc/self/mountinfo``; the
file system of a path is that of the longest mount point that is a prefix of its resolved path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

__all__ = [
    "Mount",
    "filesystem_of",
    "first_warning_for",
    "mount_needing_polling",
    "needs_polling",
    "parse_mountinfo",
]

MOUNTINFO = "/proc/self/mountinfo"

#: File systems on which changes made elsewhere raise no inotify event.
_NO_INOTIFY = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "virtiofs",
        "ceph",
        "glusterfs",
        "lustre",
        "afs",
        "gpfs",
        "vboxsf",
        "vmhgfs",
        "prl_fs",
        "osxfs",
        "fakeowner",
        "davfs",
        "fuse",
    }
)
#: FUSE mounts backed by a local block device see local writes: not worth a warning.
_LOCAL_FUSE = frozenset({"fuseblk"})

_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of mountinfo: where it is mounted, its file system type and its source."""

    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as octal escapes.
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a ``/proc/<pid>/mountinfo`` text; malformed lines are skipped.

    A line is ``id parent major:minor root mount_point options [optional...] - fstype source
    super_options`` (proc(5)); the optional fields end at the lone ``-``.
    """
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            dash = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < dash + 3:
            continue
        mounts.append(Mount(_unescape(fields[4]), fields[dash + 1], _unescape(fields[dash + 2])))
    return mounts


def filesystem_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount ``path`` (already resolved) lives on: the longest mount point prefix.

    Later lines win a tie: a mount over an existing mount point hides the earlier one.
    """
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point
        inside = point in (path, "/") or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.mount_point)):
            best = mount
    return best


def needs_polling(fstype: str) -> bool:
    """True for file systems where inotify misses changes made elsewhere."""
    if fstype in _LOCAL_FUSE:
        return False
    return fstype in _NO_INOTIFY or fstype.startswith("fuse.")


def mount_needing_polling(path: str) -> Mount | None:
    """The mount of ``path`` if it is one inotify cannot see changes on, else None (also
    when there is no mountinfo to read: not Linux, or /proc not mounted)."""
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError:
        return None
    mount = filesystem_of(os.path.realpath(path), parse_mountinfo(text))
    if mount is None or not needs_polling(mount.fstype):
        return None
    return mount


_warned_mounts: set[str] = set()
_checked_dirs: set[str] = set()


def first_warning_for(path: str) -> Mount | None:
    """The mount of ``path`` if inotify is blind there and nobody was warned about that mount
    yet in this process. Each directory is looked up once: a thousand reloaders do not read
    mountinfo a thousand times."""
    directory = os.path.dirname(os.path.abspath(path))
    if directory in _checked_dirs:
        return None
    _checked_dirs.add(directory)
    mount = mount_needing_polling(path)
    if mount is None or mount.mount_point in _warned_mounts:
        return None
    _warned_mounts.add(mount.mount_point)
    return mount
