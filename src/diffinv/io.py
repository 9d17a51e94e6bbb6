"""Safe output files: atomic writes and the checks that keep a command from destroying what is on disk.

An atomic write goes to a temporary file in the target folder, then ``os.replace``: an interrupted run leaves
either the old file or the new one, never half of one. Only regular files are ever replaced (a device node, a named
pipe or a folder at the target is refused); a symbolic link is written through, so the file it points to is updated.
:func:`check_output` is what a command calls before doing any work: it refuses an output that is one of its inputs
or lies inside an input folder (a model folder), a location it cannot write, and an existing file unless the caller
was asked to overwrite it. :func:`all_or_nothing` groups a command's writes, so an error in its second output
leaves the first unwritten too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
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


def check_input_file(path: str | Path) -> Path:
    """``path`` if it is a regular file (or a link to one), else :class:`DiffinvError` saying what it is instead: no
    such file, a folder, or a pipe, device or socket (reading one could block forever)."""
    path = Path(path)
    if not path.exists():
        raise DiffinvError(f"{path}: no such file")
    if path.is_dir():
        raise DiffinvError(f"{path} is a folder; give a file")
    if not path.is_file():
        raise DiffinvError(f"{path} is not a regular file (a pipe, device or socket); give a file")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(folder)) in Path(os.path.realpath(path)).parents


def check_folder(path: str | Path) -> Path:
    """Refuse, with :class:`DiffinvError`, a place where no file can be written inside ``path``: an existing
    non-folder, or (where ``path`` does not exist yet) a nearest existing parent that is not a writable folder."""
    existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DiffinvError(f"{existing} is not a folder; give a folder for the outputs")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DiffinvError(f"cannot write in {existing} (permission denied or a read-only file system)")
    return Path(path)


def check_output(path: str | Path, *, inputs: Iterable[str | Path | None] = (), overwrite: bool = False) -> Path:
    """Refuse, with :class:`DiffinvError`, an output path that would destroy something or cannot be written.

    Refused: a folder or any other non-regular file; the same file as one of ``inputs`` (compared by inode, so
    hard links and symbolic links count) or a file inside an input that is a folder (a model folder); a location
    that cannot be written (:func:`check_folder` on its folder); an existing file unless ``overwrite``. Returns
    ``path``.
    """
    target = _regular_target(path)
    for source in inputs:
        if source is None:
            continue
        if Path(source).is_dir() and _inside(target, Path(source)):
            raise DiffinvError(f"the output {path} is inside the input folder {source}; give another output name")
        if _same_file(Path(source), target):
            raise DiffinvError(f"the output {path} is the input {source}; give another output name")
    check_folder(target.parent)
    if target.exists() and not overwrite:
        raise DiffinvError(f"{path} already exists; pass --overwrite to replace it")
    return Path(path)


_PENDING: ContextVar[list[tuple[Path, Path]] | None] = ContextVar("diffinv_pending_writes", default=None)


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Group the atomic writes made inside: each writes its temporary file as usual, and the files replace their
    targets together when the block ends without an error; on an error every temporary file is removed and no
    target changes."""
    pending: list[tuple[Path, Path]] = []
    token = _PENDING.set(pending)
    try:
        yield
        for tmp, target in pending:
            os.replace(tmp, target)
    finally:
        _PENDING.reset(token)
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` (at the end of the enclosing
    :func:`all_or_nothing` block, if any), on error it is removed.

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
    pending = _PENDING.get()
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if pending is not None:
        pending.append((tmp, target))
        return
    try:
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
