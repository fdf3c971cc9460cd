"""Members of downloaded packages: a real .deb (built here with dpkg-deb) read without installing it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from builder.banks.sources.downloads import debian_member
from pianoscribe.errors import UserError


@pytest.fixture
def small_deb(tmp_path):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not available")
    root = tmp_path / "package"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: tiny-sounds\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: test\n"
    )
    (root / "usr" / "share" / "sounds").mkdir(parents=True)
    (root / "usr" / "share" / "sounds" / "piano.sf2").write_bytes(b"RIFF a soundfont" * 100)
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(
        ["dpkg-deb", "--build", "-Zxz", str(root), str(cache / "tiny-sounds_1.0-1_all.deb")],
        check=True,
        capture_output=True,
    )
    return cache


def test_a_member_of_a_cached_deb_is_read_without_apt(small_deb):
    data = debian_member(small_deb, "tiny-sounds", "1.0-1", "usr/share/sounds/piano.sf2")
    assert data == b"RIFF a soundfont" * 100


def test_a_missing_member_or_a_broken_deb_names_the_file(small_deb):
    with pytest.raises(UserError, match=r"tiny-sounds_1.0-1_all.deb: not a usable tiny-sounds package"):
        debian_member(small_deb, "tiny-sounds", "1.0-1", "usr/share/sounds/organ.sf2")
    (small_deb / "tiny-sounds_1.0-1_all.deb").write_bytes(b"!<arch>\ngarbage")
    with pytest.raises(UserError, match="delete it to download again"):
        debian_member(small_deb, "tiny-sounds", "1.0-1", "usr/share/sounds/piano.sf2")
