"""A minimal process that starts the measured children and reaps them with wait4.

Why not spawn them from bench/run.py: on Linux a child's ru_maxrss starts at the
RSS of the process it was forked from (exec keeps the old address space's high
water mark), so children of a parent holding boto3 would all report >= its RSS.
This process imports almost nothing, so that floor stays a few MB.

Protocol (JSON lines): stdin {"argv", "env", "cwd", "log", "cpus"?}; stdout {"pid"} once
the child runs, then {"status", "wall_s", "spawned_at", "user_s", "sys_s", "maxrss_kib", "minflt",
"nvcsw", "nivcsw"}.
Exits at end of input. Children run in their own session (setsid).
"""

import json
import os
import sys
import time


def run(request: dict) -> None:  # type: ignore[type-arg]
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    started = time.perf_counter()
    spawned_at = time.time()
    pid = os.fork()
    if pid == 0:  # the child: never returns into this loop
        try:
            os.setsid()
            if request.get("cpus"):  # pinned, as Lambda at 1,769 MB has one vCPU
                os.sched_setaffinity(0, request["cpus"])
            os.chdir(request["cwd"])
            os.dup2(devnull, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.execve(request["argv"][0], request["argv"], request["env"])  # noqa: S606
        finally:
            os._exit(127)
    os.close(log)
    os.close(devnull)
    sys.stdout.write(json.dumps({"pid": pid}) + "\n")
    sys.stdout.flush()
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    answer = {
        "status": os.waitstatus_to_exitcode(status),
        "wall_s": wall,
        "spawned_at": spawned_at,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "maxrss_kib": usage.ru_maxrss,
        "minflt": usage.ru_minflt,
        "nvcsw": usage.ru_nvcsw,
        "nivcsw": usage.ru_nivcsw,
    }
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def main() -> None:
    for line in sys.stdin:
        if line.strip():
            run(json.loads(line))


if __name__ == "__main__":
    main()
