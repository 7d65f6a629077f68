"""Which Debian mirror the rootfs build's debootstrap uses: the host's configured one (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

from clipper_docker.images._rootfs import DEFAULT_MIRROR, apt_mirror, configured_mirror


def _etc(tmp_path: Path, sources_list: str | None = None, **parts: str) -> Path:
    """An /etc/apt look-alike: ``sources.list`` and ``sources.list.d/<name>`` files (``_`` in a name becomes ``.``)."""
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    if sources_list is not None:
        (etc / "sources.list").write_text(sources_list)
    for name, text in parts.items():
        (etc / "sources.list.d" / name.replace("_", ".")).write_text(text)
    return etc


def test_nothing_configured_falls_back_to_deb_debian_org(tmp_path: Path) -> None:
    assert configured_mirror(_etc(tmp_path)) is None
    assert apt_mirror(_etc(tmp_path / "x")) == DEFAULT_MIRROR
    assert apt_mirror(tmp_path / "does-not-exist") == DEFAULT_MIRROR


def test_deb822_mirror_with_any_path(tmp_path: Path) -> None:
    etc = _etc(
        tmp_path,
        debian_sources=(
            "Types: deb\n"
            "# a comment\n"
            "URIs: http://apt-cache.internal:3142/mirrors/deb/\n"
            "Suites: bookworm bookworm-updates\n"
            "Components: main contrib\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        ),
    )
    assert apt_mirror(etc) == "http://apt-cache.internal:3142/mirrors/deb"


def test_deb822_skips_other_suites_components_types_and_disabled_stanzas(tmp_path: Path) -> None:
    etc = _etc(
        tmp_path,
        a_sources=(
            "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n\n"
            "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
            "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n\n"
            "Types: deb\nURIs: http://contrib.example/debian\nSuites: bookworm\nComponents: contrib non-free\n\n"
            "Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n"
            "Types: deb\nURIs: cdrom:[Debian]/\nSuites: bookworm\nComponents: main\n\n"
        ),
        b_sources=(
            "types: deb deb-src\n"
            "uris:\n"
            " http://mirror.example/pub/linux/debian/\n"
            " http://second.example/debian\n"
            "suites: bookworm\n"
            "components: main\n"
        ),
    )
    assert apt_mirror(etc) == "http://mirror.example/pub/linux/debian"


def test_one_line_sources_list(tmp_path: Path) -> None:
    etc = _etc(
        tmp_path,
        sources_list=(
            "# deb http://commented.example/debian bookworm main\n"
            "deb-src http://src.example/debian bookworm main\n"
            "deb http://security.example/debian-security bookworm-security main\n"
            "deb [ arch=amd64 signed-by=/usr/share/keyrings/k.gpg ] http://10.0.0.5/repo/ bookworm main  # local\n"
        ),
    )
    assert apt_mirror(etc) == "http://10.0.0.5/repo"


def test_sources_list_comes_before_sources_list_d(tmp_path: Path) -> None:
    etc = _etc(
        tmp_path,
        sources_list="deb https://first.example/debian bookworm main\n",
        debian_sources="Types: deb\nURIs: http://second.example/debian\nSuites: bookworm\nComponents: main\n",
    )
    assert apt_mirror(etc) == "https://first.example/debian"


def test_sources_list_d_files_in_name_order(tmp_path: Path) -> None:
    etc = _etc(
        tmp_path,
        zz_list="deb http://late.example/d bookworm main\n",
        aa_sources="Types: deb\nURIs: http://early.example/d\nSuites: bookworm\nComponents: main\n",
        other_list="deb http://ubuntu.example/ubuntu jammy main\n",
    )
    assert apt_mirror(etc) == "http://early.example/d"
