"""``pinnaced``, the program: the console script's entry point, light enough to load at once.

:mod:`cri.daemon` imports some 500 modules before its ``main`` can install signal handlers.
A Ctrl-C that reaches the daemon in that window (or while it reads its configuration, before
it serves) ends it with exit code 130 and one line, never a traceback; once the event loop runs,
SIGINT and SIGTERM stop it in order (:func:`cri.daemon.main`). Nothing needs undoing then: the
root lock is a ``flock`` the kernel drops, and the socket is made only after the handlers are in
place.
"""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    try:
        from cri import daemon

        return daemon.main(argv)
    except KeyboardInterrupt:
        print("pinnaced: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
