#!/usr/bin/env python3
"""Times commands round-robin: run 1 of each, then run 2 of each, ... so that the machine's drift
(this VM moves by +-30% within minutes) hits every command alike, which back-to-back batches
(hyperfine) cannot promise. Prints one line per command: name median_ms p99_ms mean_ms.

  interleave.py RUNS WARMUP NAME=CMD [NAME=CMD ...]

A CMD starting with `fd3=PATH ` gets PATH opened read-only as its fd 3 (bwrap --seccomp 3);
stdout goes to /dev/null; a command that fails stops the benchmark with its status.
"""
import os
import shlex
import statistics
import sys
import time


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    runs, warmup = int(sys.argv[1]), int(sys.argv[2])
    cmds = []
    for arg in sys.argv[3:]:
        name, _, cmd = arg.partition("=")
        argv = shlex.split(cmd)
        fd3 = None
        if argv and argv[0].startswith("fd3="):
            fd3 = argv.pop(0)[4:]
        cmds.append((name, argv, fd3))
    devnull = os.open("/dev/null", os.O_WRONLY)
    times = {name: [] for name, _, _ in cmds}
    for i in range(warmup + runs):
        for name, argv, fd3 in cmds:
            actions = [(os.POSIX_SPAWN_DUP2, devnull, 1)]
            fd = -1
            if fd3:
                fd = os.open(fd3, os.O_RDONLY)
                actions.append((os.POSIX_SPAWN_DUP2, fd, 3))
            start = time.perf_counter()
            pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
            _, status = os.waitpid(pid, 0)
            elapsed = (time.perf_counter() - start) * 1000
            if fd >= 0:
                os.close(fd)
            if status != 0:
                sys.exit(f"interleave: {name} failed (wait status {status}): {shlex.join(argv)}")
            if i >= warmup:
                times[name].append(elapsed)
    for name, _, _ in cmds:
        t = sorted(times[name])
        p99 = t[min(len(t) - 1, int(len(t) * 0.99))]
        print(f"{name} {statistics.median(t):.3f} {p99:.3f} {statistics.fmean(t):.3f}")


if __name__ == "__main__":
    main()
