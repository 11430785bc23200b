"""An incremental tail of one log file that counts matching lines.

It keeps the open file, its inode and offset between calls, so that:
- rotation by rename: the old file is read to its end through the still-open handle,
  then the new file at the path is read from offset 0;
- truncation (``copytruncate``): when the file is shorter than the offset, or the bytes
  just before the offset are no longer the ones read there, reading restarts at 0;
- binary garbage is decoded with replacement characters and never raises;
- one call reads at most ``budget`` bytes, so a huge backlog costs several scrapes
  instead of one slow scrape.
"""
from __future__ import annotations

import os
import re
import threading

# A "line" longer than this without a newline is garbage: count what we have, move on.
MAX_LINE = 64 * 1024
# How many bytes before the offset are remembered to notice a rewritten file.
FINGERPRINT = 64


class LogTail:
    def __init__(self, path: str | os.PathLike, pattern: str | re.Pattern,
                 budget: int = 4 * 1024 * 1024):
        self.path = os.fspath(path)
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self.budget = budget
        self.matches = 0
        self._lock = threading.Lock()
        self._fh = None
        self._inode: tuple[int, int] | None = None
        self._offset = 0
        self._partial = b""
        self._fingerprint = b""

    def poll(self) -> int:
        """Read what is new; return the total of matching lines so far.

        Raises OSError when the path cannot be opened (the count is kept).
        """
        with self._lock:
            budget = self.budget
            try:
                st = os.stat(self.path)
            except OSError:
                if self._fh is not None:  # rotated away and not recreated yet: finish it
                    budget -= self._drain(budget)
                raise
            ident = (st.st_dev, st.st_ino)
            if self._fh is not None and ident != self._inode:
                budget -= self._drain(budget)
                if self._fh is not None and budget <= 0:
                    return self.matches  # the old file is not finished yet
                self._close()
            if self._fh is None:
                self._fh = open(self.path, "rb")
                self._inode = (os.fstat(self._fh.fileno()).st_dev, os.fstat(self._fh.fileno()).st_ino)
                self._offset, self._partial = 0, b""
            if self._rewritten():
                self._offset, self._partial, self._fingerprint = 0, b"", b""
            self._read(budget)
            return self.matches

    def _rewritten(self) -> bool:
        """Truncated (and maybe refilled past our offset) since the last read?"""
        if os.fstat(self._fh.fileno()).st_size < self._offset:
            return True
        if not self._fingerprint:
            return False
        start = self._offset - len(self._fingerprint)
        return os.pread(self._fh.fileno(), len(self._fingerprint), start) != self._fingerprint

    def _drain(self, budget: int) -> int:
        """Finish the rotated-away file; close it once read to the end."""
        used = self._read(budget)
        if used < budget:
            self._count_partial()
            self._close()
        return used

    def _read(self, budget: int) -> int:
        if budget <= 0:
            return 0
        self._fh.seek(self._offset)
        data = self._fh.read(budget)
        self._offset += len(data)
        if not data:
            return 0
        self._fingerprint = (self._fingerprint + data)[-FINGERPRINT:]
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE:
            lines.append(self._partial)
            self._partial = b""
        for line in lines:
            if self.pattern.search(line.decode("utf-8", "replace")):
                self.matches += 1
        return len(data)

    def _count_partial(self) -> None:
        # The last line of a finished file has no newline to wait for.
        if self._partial and self.pattern.search(self._partial.decode("utf-8", "replace")):
            self.matches += 1
        self._partial = b""

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._fh, self._inode, self._offset, self._partial = None, None, 0, b""
        self._fingerprint = b""

    def close(self) -> None:
        with self._lock:
            self._close()
