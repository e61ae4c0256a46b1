"""Errors a user can fix. The CLI prints their message on one line and exits 2."""


class UserError(Exception):
    """Bad input: a missing or corrupt file, a wrong model, an unknown name, NaN values.

    The message says what is wrong and how to fix it, in one line.
    """


# what an OS error means for the user, by errno name, and what to do about it
_OS_HINTS = {
    "EROFS": "the file system is read-only; write somewhere else (--out, --runs-dir)",
    "ENOSPC": "the disk is full; free space and run the same command again (finished "
    "units are kept, the unfinished one was not written)",
    "EFBIG": "the file is larger than this process may write (ulimit -f); raise the limit "
    "and run the same command again",
    "EDQUOT": "the disk quota is used up; free space and run the same command again",
    "ENOTDIR": "a part of the path is a file, not a folder; choose another path",
    "EISDIR": "the path is a folder where a file is expected; choose a file path",
    "EACCES": "permission denied; choose a path you can write, or fix its permissions",
    "EPERM": "operation not permitted; choose a path you can write",
    "ENOENT": "no such file or folder",
    "ENAMETOOLONG": "the path is too long; choose a shorter one",
}


def os_error_line(e: BaseException) -> str | None:
    """One line for an OS error a user can fix (a read-only, full or wrong path), or None
    when ``e`` is not one. Also reads the safetensors writer's own error, which carries
    the OS message as text."""
    import errno

    if isinstance(e, OSError) and e.errno is not None and e.errno in errno.errorcode:
        name = errno.errorcode[e.errno]
        where = e.filename or ""
        hint = _OS_HINTS.get(name, e.strerror or name)
        return f"{where + ': ' if where else ''}{e.strerror or name} ({hint})"
    text = str(e)
    if type(e).__name__ == "SafetensorError":
        for name, needle in (("ENOSPC", "No space left"), ("EFBIG", "File too large"),
                             ("EROFS", "Read-only file system")):  # fmt: skip
            if needle in text:
                return f"{text.strip()} ({_OS_HINTS[name]})"
    return None
