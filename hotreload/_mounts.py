"""Which file system a path is on, and whether inotify can be trusted there.

NFS, CIFS/SMB, 9p, virtiofs and most FUSE mounts (sshfs, gcsfuse, Docker Desktop's
grpcfuse/osxfs bind mounts) deliver no inotify event for a change made by another machine (or
by the host, for a VM's shared folder): the watcher then sees nothing, and only the safety poll
would notice, a minute later. Linux says what each mount is in ``/proc/self/mountinfo``; the
file system of a path is that of the longest mount point that is a prefix of its resolved path.

Every reloader that starts asks (is the file a mount of its own, is its file system one inotify
is blind on), so the parsed table is kept and read again only when it may have changed; see
`mount_table`.
"""

from __future__ import annotations

import os
import re
import select
import threading
from dataclasses import dataclass

__all__ = [
    "Mount",
    "MountTable",
    "filesystem_of",
    "first_warning_for",
    "mount_needing_polling",
    "mount_table",
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


@dataclass(frozen=True, slots=True)
class MountTable:
    """The process's mounts as last read, and their mount points as a set."""

    mounts: list[Mount]
    points: frozenset[str]


def _signature(path: str) -> tuple[int, ...] | None:
    """What says a mountinfo file was replaced or rewritten: its own stat (a regular file
    standing in for procfs, as tests do, has no POLLPRI), and the mount namespace it is read
    in (after a ``setns`` the kept descriptor still shows the old one)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    try:
        ns = os.stat("/proc/self/ns/mnt").st_ino
    except OSError:
        ns = 0
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, ns)


class _Cache:
    """One open mountinfo, its parsed table, and what tells it changed since."""

    __slots__ = ("fd", "path", "pid", "poller", "signature", "table")

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()
        self.signature = _signature(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.poller = select.poll()
            self.poller.register(self.fd, select.POLLPRI)
            self.table = self._read()
        except BaseException:
            os.close(self.fd)
            raise

    def _read(self) -> MountTable:
        os.lseek(self.fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self.fd, 1 << 16):
            chunks.append(chunk)
        text = b"".join(chunks).decode("utf-8", errors="surrogateescape")
        mounts = parse_mountinfo(text)
        return MountTable(mounts, frozenset(m.mount_point for m in mounts))

    def current(self) -> MountTable:
        """The table, read again if the kernel says the mount table changed since the last
        poll (procfs reports POLLPRI|POLLERR once after any number of changes)."""
        if any(events & (select.POLLPRI | select.POLLERR) for _, events in self.poller.poll(0)):
            self.table = self._read()
        return self.table

    def close(self) -> None:
        os.close(self.fd)


_cache: _Cache | None = None
_cache_lock = threading.Lock()  # reloaders may start on several threads' loops at once


def mount_table() -> MountTable | None:
    """The mounts of this process now; None when there is no mountinfo to read (not Linux, or
    /proc not mounted).

    Every reloader start looks twice (`first_warning_for`, ``_kube.is_file_mount``); reading
    and parsing the file each time cost 0.3 to 0.6 s per thousand starts. So the table is
    kept, with the file open, and read again only when it may have changed:

    * procfs marks an open mountinfo with POLLPRI|POLLERR whenever a mount or unmount happens
      in its namespace (proc(5)), so a poll with no timeout on the kept descriptor says whether
      the table changed since the last poll: a mount made a moment ago is seen by the next
      reloader to start, as exactly as re-reading, for the price of one syscall;
    * in a forked child (the descriptor, and the flag, would be shared with the parent), in
      another mount namespace, or when ``MOUNTINFO`` names another file or that file was
      rewritten (its stat changed: a regular file has no POLLPRI), it is opened afresh.

    Not a time-to-live: a cache that is stale for a few seconds would leave a reloader started
    right after a mount without its warning, for good.
    """
    global _cache  # noqa: PLW0603 - one table per process
    path = MOUNTINFO
    with _cache_lock:
        cache = _cache
        if (
            cache is None
            or cache.path != path
            or cache.pid != os.getpid()
            or cache.signature != _signature(path)
        ):
            if cache is not None:  # (in a forked child, its own copy of the descriptor)
                cache.close()
            _cache = None
            try:
                cache = _Cache(path)
            except OSError:
                return None
            _cache = cache
        try:
            return cache.current()
        except OSError:
            _cache = None
            cache.close()
            return None


def mount_needing_polling(path: str) -> Mount | None:
    """The mount of ``path`` if it is one inotify cannot see changes on, else None (also
    when there is no mountinfo to read: not Linux, or /proc not mounted)."""
    table = mount_table()
    if table is None:
        return None
    mount = filesystem_of(os.path.realpath(path), table.mounts)
    if mount is None or not needs_polling(mount.fstype):
        return None
    return mount


_warned_mounts: set[str] = set()


def first_warning_for(path: str) -> Mount | None:
    """The mount of ``path`` if inotify is blind there and nobody was warned about that mount
    yet in this process. Looked up for every file (the table is cached, see `mount_table`), so
    a directory that became a mount since an earlier reloader looked is still reported."""
    mount = mount_needing_polling(path)
    if mount is None or mount.mount_point in _warned_mounts:
        return None
    _warned_mounts.add(mount.mount_point)
    return mount
