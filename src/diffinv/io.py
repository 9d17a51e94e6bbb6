"""Safe output files: atomic writes and the checks that keep a command from destroying what is on disk.

An atomic write goes to a temporary file in the target folder, then ``os.replace``: an interrupted run leaves
either the old file or the new one, never half of one. Only regular files are ever replaced (a device node, a named
pipe or a folder at the target is refused); a symbolic link is written through, so the file it points to is updated.
:func:`check_output` is what a command calls before doing any work: it refuses an output that is one of its inputs
and an existing file unless the caller was asked to overwrite it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from PIL import Image

from diffinv.errors import DiffinvError


def _regular_target(path: str | Path) -> Path:
    """``path`` with symbolic links resolved; :class:`DiffinvError` unless it is absent or a regular file."""
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise DiffinvError(f"{path} is a folder; give a file name")
    if target.exists() and not target.is_file():
        raise DiffinvError(f"{path} is not a regular file (a device, pipe or socket); give a file name")
    return target


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output(path: str | Path, *, inputs: Iterable[str | Path | None] = (), overwrite: bool = False) -> Path:
    """Refuse, with :class:`DiffinvError`, an output path that would destroy something.

    Refused: a folder or any other non-regular file; the same file as one of ``inputs`` (compared by inode, so
    hard links and symbolic links count); an existing file unless ``overwrite``. Returns ``path``.
    """
    target = _regular_target(path)
    for source in inputs:
        if source is not None and _same_file(Path(source), target):
            raise DiffinvError(f"the output {path} is the input {source}; give another output name")
    if target.exists() and not overwrite:
        raise DiffinvError(f"{path} already exists; pass --overwrite to replace it")
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    Raises:
        DiffinvError: ``path`` exists and is not a regular file (nor a link to one).
    """
    target = _regular_target(path)
    if target.parent and not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions a plain open() would
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def save_image(image: Image.Image, path: str | Path) -> Path:
    """Save ``image`` atomically; the format follows ``path``'s suffix (PNG when it has none Pillow knows)."""
    target = Path(path)
    fmt = Image.registered_extensions().get(target.suffix.lower(), "PNG")
    return atomic_write(target, lambda tmp: image.save(tmp, format=fmt))
