"""docs/design.md §1 name rules, restated in Python: the integration tests predict the tree
from the data with them, and the emulator names its /_tree/ view with them. Standard
library only (the emulator imports it)."""

# A name every directory that lists children serves itself: always taken there.
INDEX = ".index.jsonl"
# The files a Codeup group serves itself: taken there too (pass them as reserved).
GROUP_FILES = ("meta.json", "url", "branch")


def sanitize(raw: bytes) -> bytes:
    if raw in (b"", b".", b".."):
        return b"_" + raw
    out = bytes(b if b >= 0x20 and b != 0x7F and b != ord("/") else ord("_") for b in raw)
    return cut(out, 255)


def cut(name: bytes, limit: int) -> bytes:
    """Cut at a UTF-8 character boundary so the result has at most limit bytes."""
    if len(name) <= limit:
        return name
    end = limit
    # Step back over continuation bytes of a character that does not fit whole.
    while end > 0 and (name[end] & 0xC0) == 0x80:
        end -= 1
    return name[:end]


def id_key(i: str):
    return (0, int(i), i) if i.isdigit() else (1, 0, i)


def id_less(a: str, b: str) -> bool:
    if a.isdigit() and b.isdigit():
        return (int(a), a) < (int(b), b)
    return a.encode() < b.encode()


def assign(entries, reserved=()):
    """entries: list of (raw bytes, id str, ctime int or 0), the children of one directory;
    reserved: the names it serves besides INDEX (GROUP_FILES in a Codeup group). Returns
    {id: name bytes}."""
    import functools

    def cmp(x, y):
        if x[2] != y[2]:
            return -1 if x[2] < y[2] else 1
        if x[1] == y[1]:
            return 0
        return -1 if id_less(x[1], y[1]) else 1

    taken = {INDEX.encode(), *(r.encode() for r in reserved)}
    names = {}
    for raw, ident, _ in sorted(entries, key=functools.cmp_to_key(cmp)):
        base = sanitize(raw)
        name = base
        if name in taken:
            suffix = b"~" + sanitize(ident.encode())
            k = 1
            while len(suffix) * k <= 255:
                name = cut(base, 255 - len(suffix) * k) + suffix * k
                if name not in taken:
                    break
                k += 1
            else:  # no copy fits, or all are taken: "~<id>" cut to 234 bytes, "~<n>"
                head = cut(suffix, 234)
                head, n = cut(base, 234 - len(head)) + head, 2
                while (name := head + b"~%d" % n) in taken:
                    n += 1
        taken.add(name)
        names[ident] = name
    return names
