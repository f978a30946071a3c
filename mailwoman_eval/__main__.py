"""`python -m mailwoman_eval` and the `mweval` script. A Ctrl-C while the CLI is still being
imported (click, the package) ended in a KeyboardInterrupt traceback: it is said as the CLI says it.

A command that ends while a loader thread is still at work (an error or a Ctrl-C during loading,
and a model whose onnxruntime session takes longer than `wait_briefly`'s bound to make) leaves
the process without finalizing the interpreter: a session creation that returns while the
interpreter finalizes aborts the process with "terminate called without an active exception"
and exit 134 instead of the command's own code (reproduced with a graph whose session takes
1.9 s: 2 of 10 exits timed near its end aborted)."""

import os
import sys
import threading


def run() -> None:
    try:
        from mailwoman_eval.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("\nmweval: interrupted; unfinished outputs were not written\n")  # cli._stopped's line
        sys.exit(130)
    try:
        main()  # click's standalone mode always ends in SystemExit
    except SystemExit as e:
        if not loaders_running():
            raise
        code = e.code
        if isinstance(code, str):  # what SystemExit("text") prints
            sys.stderr.write(code + "\n")
            code = 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
                pass
        os._exit(code or 0)  # outputs are written (or removed) by now: only finalization is skipped


def loaders_running() -> bool:
    """The daemon loader threads `checkpoints.backend.in_daemon` starts (named mweval-*)."""
    return any(t.daemon and t.name.startswith("mweval-") and t.is_alive() for t in threading.enumerate())


if __name__ == "__main__":
    run()
