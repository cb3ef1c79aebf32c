"""The ``nflc`` command's entry point: the command line is imported only here, inside the
handler of Ctrl-C, so an interrupt during start-up (typer, rich, the compiler) exits with
code 130 and a message, never a traceback (``nflc/__init__`` imports nothing heavy)."""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def main() -> None:
    try:
        from nflc.cli import main as cli_main  # the command line loads only here, inside the Ctrl-C handler
    except KeyboardInterrupt:
        import signal  # only when interrupted

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the message short
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    cli_main()


if __name__ == "__main__":
    main()
