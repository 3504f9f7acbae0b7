"""Defects an audit found, each through a real mount (the daemon's log is checked for
sanitizer reports by the mount fixture)."""
import os
import time

from test_pai import pai_config


def test_expired_first_page_name_then_a_full_listing(emulator, mount):
    """A directory read to its first page only, one of its names looked up again once the
    page expired, then a look-up that lists the whole directory: the daemon wrote into a
    freed node here (use-after-free) and the mount died."""
    emu = emulator("--generate-pai", "250")
    m = mount(emu, pai_config(emu), opts=["dir_ttl=2", "attr_ttl=1"])
    ws = os.path.join(m.path, "pai", "1001")
    with os.scandir(ws) as it:
        first = next(it).name
    time.sleep(3)
    os.stat(os.path.join(ws, first))
    assert not os.path.exists(os.path.join(ws, "x~y"))
    names = os.listdir(ws)
    assert len(names) == len(set(names)) == 250
    assert first in names
    assert m.proc.poll() is None
