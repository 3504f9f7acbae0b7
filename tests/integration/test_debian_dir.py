"""debian/ against the rest of the tree, without building: one version everywhere, and
every build dependency installed by `make deb` (the Makefile's DEB_BUILD and DEB_DEB
lists, through contrib/deps.sh). The package itself: test_deb_package.py (make check-deb)."""
import os
import re

from conftest import ROOT


def read(*path):
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


def makefile_list(name):
    """The words of a Makefile variable NAME := a b \\ c."""
    m = re.search(rf"^{name}\s*:=((?:.*\\\n)*.*)$", read("Makefile"), re.M)
    return m.group(1).replace("\\\n", " ").split()


def control_field(name):
    text = read("debian", "control")
    m = re.search(rf"^{name}:((?:.*\n)(?:[ \t].*\n)*)", text, re.M)
    return " ".join(m.group(1).split())


def test_makefile_changelog_and_man_page_name_one_version():
    (version,) = makefile_list("VERSION")
    first = read("debian", "changelog").splitlines()[0]
    m = re.match(r"codesrcfs \(([^)]+)\) \S+; urgency=\w+$", first)
    assert m, first
    assert m.group(1) == version
    assert "-" not in version  # a native package's version has no Debian revision
    assert f'"codesrcfs {version}"' in read("docs", "codesrcfs.1").splitlines()[1]


def test_native_source_format():
    assert read("debian", "source", "format") == "3.0 (native)\n"


def test_build_depends_are_installed_by_make_deb():
    installed = set(makefile_list("DEB_BUILD")) | set(makefile_list("DEB_DEB"))
    missing = []
    for dep in control_field("Build-Depends").split(","):
        dep = re.sub(r"<[^>]*>|\([^)]*\)", "", dep)  # profiles, versions
        alternatives = {a.strip() for a in dep.split("|")}
        alternatives = {"debhelper" if a == "debhelper-compat" else a for a in alternatives}
        if not alternatives & installed:
            missing.append(dep.strip())
    assert missing == []


def test_package_depends_on_its_libraries_and_fuse3():
    depends = [d.strip() for d in control_field("Depends").split(",")]
    assert "${shlibs:Depends}" in depends and "fuse3" in depends
