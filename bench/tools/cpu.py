"""cpu.py SID...: CPU seconds (user+system) used so far by every process of each session id
(bench/lib.sh starts every service with setsid, so a service's session id is its pid and
covers its worker processes). Prints one number per SID, space-separated."""

import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def session_cpu(sid):
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is field 3 (state); session is field 6, utime 14, stime 15.
        if int(fields[3]) == sid:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


print(" ".join(f"{session_cpu(int(s)):.2f}" for s in sys.argv[1:]))
