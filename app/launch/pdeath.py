"""Run a program that Linux stops when the process that started it dies, however it dies.

    python -I -S pdeath.py SIGNUM PARENT_PID -- program [args...]

It asks the kernel for a parent-death signal (``prctl(PR_SET_PDEATHSIG)``), checks that the
parent did not die before that took effect, then becomes the program (``execvp``: the signal
survives the exec). It runs by path, before the program, so it imports the standard library
only; `openwa run` starts its roles and the embedded redis-server through it.
"""
from __future__ import annotations

import ctypes
import os
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    if len(argv) < 5 or argv[3] != "--":
        sys.exit("usage: pdeath.py SIGNUM PARENT_PID -- program [args...]")
    signum, parent, program = int(argv[1]), int(argv[2]), argv[4:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        sys.exit(f"pdeath: prctl failed: {os.strerror(ctypes.get_errno())}")
    if os.getppid() != parent:  # it died before the signal was armed: nothing would come
        sys.exit(f"pdeath: parent {parent} is gone; not starting {program[0]}")
    os.execvp(program[0], program)


if __name__ == "__main__":
    main(sys.argv)
