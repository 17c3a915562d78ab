#!/usr/bin/env python3
"""Which tables and indexes a SQLite commit logs: pages per commit, by B-tree.

Copy the `-wal` file of a running stockpool (`cp b.db-wal /tmp/w.copy`) while it is under
load, then run, once the run is over (so the database holds the same B-trees):

    scripts/wal-pages.py /tmp/w.copy b.db

It walks the log's frames that carry the log header's salt (the frames since the log last
started again), groups them by commit, and names each frame's page from SQLite's `dbstat`
table (Python's sqlite3 module has it). The log format is SQLite's documented WAL format
(https://www.sqlite.org/fileformat.html#the_write_ahead_log): a 32-byte header, then
frames of a 24-byte header (page number, database size after a commit or 0, salts,
checksums) and one page. BENCHMARKS.md used it to find what each commit logged.
"""

import collections
import sqlite3
import struct
import sys


def main(wal_path: str, db_path: str) -> None:
    wal = open(wal_path, "rb").read()
    if len(wal) < 32:
        sys.exit(f"{wal_path}: not a write-ahead log (shorter than its header)")
    magic, _version, page_size, _seq, salt1, salt2, _c1, _c2 = struct.unpack(">8I", wal[:32])
    if magic not in (0x377F0682, 0x377F0683):
        sys.exit(f"{wal_path}: not a write-ahead log (magic {magic:#x})")
    frame_size = 24 + page_size
    commits, current, offset = [], [], 32
    while offset + frame_size <= len(wal):
        page, commit_size, s1, s2 = struct.unpack(">4I", wal[offset : offset + 16])
        if (s1, s2) != (salt1, salt2):
            break
        current.append(page)
        if commit_size:
            commits.append(current)
            current = []
        offset += frame_size
    if not commits:
        sys.exit("no complete commit in the log")
    owner = {page: name for name, page in sqlite3.connect(db_path).execute("SELECT name, pageno FROM dbstat")}
    per_btree = collections.Counter(owner.get(page, "?") for c in commits for page in c)
    frames = sum(len(c) for c in commits)
    print(f"commits {len(commits)}, frames {frames}, {frames / len(commits):.1f} pages per commit")
    for name, n in per_btree.most_common():
        print(f"  {name:40} {n / len(commits):7.1f} per commit")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
