"""Checked, atomic file writes: a file appears whole or not at all, and a failed write raises.

Every file the package writes for a user (PNGs, CSV/JSON results, converted weights, reports)
goes through ``write``: the data goes to a temporary name in the destination folder and is then
renamed over the destination, so a crash or kill never leaves a half-written file.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from typing import IO, Callable


def _check_parents(path: pathlib.Path) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{path}: {parent} is a file, not a folder")
            return


def check_destination(path: str | os.PathLike) -> pathlib.Path:
    """``path`` as a Path, refused (naming it) when a folder stands there or a parent is a file.

    Raises:
      IsADirectoryError / NotADirectoryError: naming ``path``.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: a folder stands where the output file should go")
    _check_parents(path)
    return path


def check_folder(path: str | os.PathLike) -> pathlib.Path:
    """``path`` as a Path, refused (naming it) when a file stands where this output folder goes.

    Nothing is created: callers make the folder once their inputs are checked.
    """
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path}: a file stands where the output folder should go")
    _check_parents(path)
    return path


def write(
    path: str | os.PathLike, fill: Callable[[IO], object], binary: bool = True
) -> pathlib.Path:
    """Writes ``path`` by calling ``fill(f)`` on a temporary file, then renames it into place.

    The parent folder is created if needed.

    Raises:
      OSError: naming ``path``, when the folder cannot be created or the file cannot be written.
    """
    path = check_destination(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(f"{path}: cannot write here ({e.strerror or e})") from e
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
            fill(f)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and str(path) not in str(e):
            raise OSError(f"{path}: could not be written ({e.strerror or e})") from e
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> pathlib.Path:
    """``write`` of a bytes object."""
    return write(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
    """``write`` of a text (UTF-8)."""
    return write_bytes(path, text.encode())
