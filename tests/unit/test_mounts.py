"""Which file system a path is on (mountinfo), and the polling settings watchfiles' way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from watchfiles.main import _default_force_polling, _default_poll_delay_ms

import hotreload._mounts
from hotreload._kube import is_file_mount
from hotreload._mounts import (
    Mount,
    filesystem_of,
    mount_needing_polling,
    mount_table,
    needs_polling,
    parse_mountinfo,
)
from hotreload._watch import polling_settings

SAMPLE = r"""22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 0:35 / /mnt/nfs rw,relatime shared:20 - nfs4 fileserver:/export/config rw,vers=4.2
41 40 0:36 / /mnt/nfs/local rw,relatime - tmpfs tmpfs rw
42 22 0:37 / /srv/with\040space rw,relatime shared:21 master:3 - cifs //win/share rw,vers=3.0
43 22 0:38 / /home/me/remote rw,nosuid,nodev,relatime - fuse.sshfs me@host:/etc rw,user_id=0
44 22 0:39 / /var/lib/kubelet/pods/x/volumes/cm rw,relatime - tmpfs tmpfs rw,size=100k
45 22 0:40 / /mnt/nfsish rw - ext4 /dev/sdb1 rw
46 22 0:41 / /run/desktop/mnt/host/c rw - fakeowner C:\134 rw
47 22 0:42 / /media/usb rw - fuseblk /dev/sdc1 rw
48 22 0:43 / /mnt/nfs rw,relatime - virtiofs shared rw
this line is not mountinfo
"""


def test_parse_mountinfo_reads_mount_point_fstype_and_source() -> None:
    mounts = parse_mountinfo(SAMPLE)
    assert len(mounts) == 11  # the malformed line is skipped
    assert mounts[0] == Mount("/", "ext4", "/dev/sda1")
    # Optional fields (shared:, master:) come before the lone "-"; octal escapes decoded.
    assert mounts[4] == Mount("/srv/with space", "cifs", "//win/share")
    assert mounts[8] == Mount("/run/desktop/mnt/host/c", "fakeowner", "C:\\")


@pytest.mark.parametrize(
    ("path", "fstype"),
    [
        ("/etc/app/config.yaml", "ext4"),
        ("/mnt/nfs/config.yaml", "virtiofs"),  # mounted over the nfs4 mount: the later wins
        ("/mnt/nfs/local/config.yaml", "tmpfs"),  # the longest prefix
        ("/mnt/nfsish/config.yaml", "ext4"),  # a prefix of the name is not a parent
        ("/mnt/nfs", "virtiofs"),
        ("/srv/with space/c.yaml", "cifs"),
        ("/home/me/remote/app.toml", "fuse.sshfs"),
        ("/var/lib/kubelet/pods/x/volumes/cm/..data/config.yaml", "tmpfs"),
    ],
)
def test_filesystem_of_is_the_longest_mount_point_prefix(path: str, fstype: str) -> None:
    found = filesystem_of(path, parse_mountinfo(SAMPLE))
    assert found is not None
    assert found.fstype == fstype


@pytest.mark.parametrize(
    ("fstype", "polls"),
    [
        ("nfs", True),
        ("nfs4", True),
        ("cifs", True),
        ("smb3", True),
        ("9p", True),
        ("virtiofs", True),
        ("fuse.sshfs", True),
        ("fuse.gcsfuse", True),
        ("fakeowner", True),
        ("ext4", False),
        ("xfs", False),
        ("tmpfs", False),
        ("overlay", False),
        ("fuseblk", False),
    ],
)
def test_needs_polling(fstype: str, polls: bool) -> None:
    assert needs_polling(fstype) is polls


@pytest.mark.parametrize("force", [None, True, False])
@pytest.mark.parametrize(
    "env", [None, "", "1", "true", "yes", "false", "FALSE", "disable", "Disabled", "0"]
)
@pytest.mark.parametrize("delay_env", [None, "", "75", "x1", "-5"])
def test_polling_settings_match_watchfiles(
    monkeypatch: pytest.MonkeyPatch, force: bool | None, env: str | None, delay_env: str | None
) -> None:
    for name, value in (("WATCHFILES_FORCE_POLLING", env), ("WATCHFILES_POLL_DELAY_MS", delay_env)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    expected = (_default_force_polling(force), _default_poll_delay_ms(300))
    assert polling_settings(force, 300) == expected


def test_the_kept_table_follows_a_rewritten_stand_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A regular file as MOUNTINFO (no POLLPRI there): read again once its stat changed."""
    share = tmp_path / "share"
    share.mkdir()
    mountinfo = tmp_path / "mountinfo"
    root_line = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    mountinfo.write_text(root_line)
    monkeypatch.setattr(hotreload._mounts, "MOUNTINFO", str(mountinfo))
    assert mount_needing_polling(str(share / "a.yaml")) is None
    assert mount_table() is mount_table()  # kept, not parsed again
    real = os.path.realpath(share)
    mountinfo.write_text(f"{root_line}40 22 0:35 / {real} rw - nfs4 server:/export rw\n")
    assert mount_needing_polling(str(share / "a.yaml")) == Mount(real, "nfs4", "server:/export")
    assert is_file_mount(real)
    monkeypatch.undo()  # the real /proc/self/mountinfo again: another file, opened afresh
    assert not is_file_mount(real)


_MOUNT_IN_OWN_NAMESPACE = textwrap.dedent(
    """
    import os, subprocess, tempfile
    from hotreload._mounts import mount_table

    point = os.path.realpath(tempfile.mkdtemp())
    assert point not in mount_table().points
    subprocess.run(["mount", "-t", "tmpfs", "none", point], check=True)
    assert point in mount_table().points, "a mount made after the table was kept"
    child = os.fork()
    if child == 0:  # shares the kept descriptor: must not take the parent's change flag
        subprocess.run(["umount", point], check=True)
        os._exit(0 if point not in mount_table().points else 1)
    assert os.waitpid(child, 0)[1] == 0, "the child saw its own unmount"
    assert point not in mount_table().points, "the parent saw the child's unmount"
    os.rmdir(point)
    print("ok")
    """
)


def test_a_mount_made_after_the_table_was_kept_is_seen() -> None:
    """procfs flags the kept descriptor on each mount change (a new mount is seen by the next
    look, no time-to-live), and a forked child does not consume its parent's flag. Run in a
    mount namespace of its own (``unshare -m``): needs CAP_SYS_ADMIN, skipped without."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-m", "true"], check=False).returncode:
        pytest.skip("no unshare -m here (needs CAP_SYS_ADMIN)")
    done = subprocess.run(
        [unshare, "-m", sys.executable, "-c", _MOUNT_IN_OWN_NAMESPACE],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
