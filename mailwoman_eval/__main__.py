"""`python -m mailwoman_eval` and the `mweval` script. A Ctrl-C while the CLI is still being
imported (click, the package) ended in a KeyboardInterrupt traceback: it is said as the CLI says it."""

import sys


def run() -> None:
    try:
        from mailwoman_eval.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("\nmweval: interrupted; unfinished outputs were not written\n")  # cli._stopped's line
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
