from hotreload._kube import is_file_mount, mount_points

MOUNTINFO = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "812 22 0:51 /..2026_11_24/config.yaml /etc/holmes/config.yaml ro,relatime - tmpfs tmpfs ro\n"
    "813 22 0:52 / /etc/with\\040space rw - tmpfs tmpfs rw\n"
)


def test_mount_points_unescape_octal() -> None:
    assert mount_points(MOUNTINFO) == {"/", "/etc/holmes/config.yaml", "/etc/with space"}


def test_subpath_file_mount_is_detected() -> None:
    assert is_file_mount("/etc/holmes/config.yaml", MOUNTINFO)


def test_directory_mount_is_not_a_subpath() -> None:
    assert not is_file_mount("/etc/with space/config.yaml", MOUNTINFO)
    assert not is_file_mount("/etc/other/config.yaml", MOUNTINFO)


def test_this_process_mountinfo_is_readable() -> None:
    # A plain temp file is never a mount point on its own.
    assert not is_file_mount(__file__)
