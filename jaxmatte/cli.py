"""Command-line endings shared by every entry point: one ``error: ...`` line, never a traceback.

``jaxmatte.main``, ``jaxmatte.evaluate``, ``jaxmatte.convert``, ``data_prep.build`` and
``data_prep.foreground`` end a failure as ``error: <file or key>: <problem>`` and a non-zero
status. ``--verbosity=1`` (or ``JAXMATTE_TRACEBACK=1``) shows the traceback for debugging.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, NoReturn, Sequence

TRACEBACK_ENV = "JAXMATTE_TRACEBACK"
FAILURE = 1  # exit status of a failed command (argparse usage errors exit 2)


def show_traceback(argv: Sequence[str] | None = None) -> bool:
    """``--verbosity N`` / ``--verbosity=N`` / ``-v N`` with N >= 1, or ``JAXMATTE_TRACEBACK=1``."""
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        return True
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, a in enumerate(argv):
        value = None
        if a.startswith(("--verbosity=", "-v=")):
            value = a.split("=", 1)[1]
        elif a in ("--verbosity", "-v") and i + 1 < len(argv):
            value = argv[i + 1]
        if value is not None:
            try:
                return int(value) >= 1
            except ValueError:
                return False
    return False


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """The ``--verbosity`` flag of argparse commands (read by ``show_traceback``)."""
    parser.add_argument(
        "--verbosity", type=int, default=0, help="1 shows the traceback of a failure"
    )


def error_line(e: BaseException) -> str:
    """The one line a user sees for ``e``: its message (a ``KeyError``'s without quotes)."""
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    msg = str(msg).strip()
    first = msg.splitlines()[0] if msg else type(e).__name__
    known = (ValueError, OSError, RuntimeError, KeyError, FloatingPointError)
    kind = "" if isinstance(e, known) else f"{type(e).__name__}: "
    return f"error: {kind}{first}"


def run(main: Callable[[], int | None], argv: Sequence[str] | None = None) -> NoReturn:
    """``sys.exit(main())``, any exception ending as ``error_line`` and status ``FAILURE``."""
    try:
        status = main()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit("error: interrupted")
    except Exception as e:  # noqa: BLE001 - the user sees one line; --verbosity=1 shows it all
        if show_traceback(argv):
            raise
        print(f"{error_line(e)} (--verbosity=1 shows the traceback)", file=sys.stderr)
        sys.exit(FAILURE)
    sys.exit(status or 0)
