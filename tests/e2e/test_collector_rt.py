#!/usr/bin/env python3
"""End-to-end: EVENTOPS_COLLECTOR_RT_PRIORITY (ADR-26).

  A. A collector started with EVENTOPS_COLLECTOR_RT_PRIORITY=1 runs every thread it started for
     its work (HTTP, librdkafka, the delivery poller, the credential reloads) under SCHED_RR at
     priority 1 (the main thread and the memory trimmer it started before keep the normal
     scheduler), accepts a batch and the processor (normal scheduler, every thread SCHED_OTHER)
     stores it exactly once.
  B. Priority 100 is refused before anything starts: exit code 2 and a log line naming the
     setting and its range.
  C. Where the kernel refuses SCHED_RR (RLIMIT_RTPRIO 0 and no CAP_SYS_NICE: a process that
     dropped them, as a container would), the collector does not start: exit code 1 and an
     error naming CAP_SYS_NICE. The collector is started without the capability by setpriv
     and prlimit, which needs root.
The test needs root (or CAP_SYS_NICE and setpriv's rights), as `make test` here has.
At the end the logs hold no sanitizer report.

Environment: the stack's (scripts/stack.sh env) plus EVENTOPS_BIN. Exit code 0 = pass.
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402

SCHED_OTHER, SCHED_RR = 0, 2


def threads_policy(pid):
    """{tid: (comm, policy, rt_priority)} of every thread of pid, from /proc/pid/task/*/stat."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is field 3 (state): rt_priority is field 40, policy field 41
        out[int(tid)] = (comm, int(fields[38]), int(fields[37]))
    return out


def main():
    with eotest.Sandbox("collector_rt") as sb:
        F = sb.failures
        tenant = sb.create_tenant("rt-%s" % eotest.rand_hex(4))
        proc = sb.processor()
        proc.start()
        coll = sb.collector(extra_env={"EVENTOPS_COLLECTOR_RT_PRIORITY": "1"})
        coll.start()
        proc.wait_ready()
        coll.wait_ready()

        # A: the collector's threads, then a batch stored exactly once
        ids = ["rt-%d-%s" % (i, eotest.rand_hex(4)) for i in range(50)]
        status, _, body = eotest.post_json(
            sb.url("/events/batch"),
            [{"eventType": "rt_check", "userId": "u%d" % i, "messageId": m}
             for i, m in enumerate(ids)], key=tenant["writeKey"])
        F.check(status == 202, "batch answered %r %r" % (status, body))
        seen = threads_policy(coll.pid)
        rr = {t: v for t, v in seen.items() if v[1] == SCHED_RR and v[2] == 1}
        other = {t: v for t, v in seen.items() if t not in rr}
        rdk = [v for v in rr.values() if v[0].startswith("rdk:")]
        # The main thread waits for signals (it took SCHED_RR only while the collector started
        # its threads) and started the memory trimmer (eo-trim) before: those two keep the
        # normal scheduler; everything the collector started for its work is real-time.
        main_ok = other.get(coll.pid, ("", SCHED_OTHER, 0))[1] == SCHED_OTHER
        stray = {t: v for t, v in other.items() if t != coll.pid and v[0] != "eo-trim"}
        F.check(main_ok and not stray and all(v[1] == SCHED_OTHER for v in other.values()),
                "collector threads not under SCHED_RR 1 (besides main and eo-trim): %r" % other)
        F.check(len(rr) >= 3 and rdk, "too few real-time threads (%d, librdkafka's: %d): %r" %
                (len(rr), len(rdk), seen))
        p_seen = threads_policy(proc.pid)
        F.check(all(v[1] == SCHED_OTHER for v in p_seen.values()),
                "processor threads not under the normal scheduler: %r" % p_seen)
        sb.wait_stored(ids, timeout=60)
        dup = sb.scalar("SELECT count(*) - count(DISTINCT message_id) FROM events")
        n = sb.scalar("SELECT count(*) FROM events WHERE event_type = 'rt_check'")
        F.check(str(n) == "50" and str(dup) == "0", "stored %r events, %r duplicates" % (n, dup))
        F.check(coll.stop() == 0, "collector did not stop cleanly")

        # B: out of range, refused by the configuration
        p = sb.run_bin("collector", check=False, timeout=30,
                       extra_env={"EVENTOPS_COLLECTOR_RT_PRIORITY": "100"})
        F.check(p.returncode == 2, "priority 100: exit %r" % p.returncode)
        F.check("EVENTOPS_COLLECTOR_RT_PRIORITY" in p.stderr and "99" in p.stderr,
                "priority 100: the error does not name the setting and its range: %s" %
                p.stderr[-400:])

        # C: the kernel refuses: no CAP_SYS_NICE, RLIMIT_RTPRIO 0
        setpriv = shutil.which("setpriv")
        c_note = "C not run (needs root and setpriv)"
        if os.geteuid() == 0 and setpriv:
            env = dict(sb.env, EVENTOPS_COLLECTOR_RT_PRIORITY="1",
                       EVENTOPS_COLLECTOR_PORT=str(eotest.free_port()))
            cmd = [setpriv, "--inh-caps=-sys_nice", "--bounding-set=-sys_nice", "--",
                   "prlimit", "--rtprio=0", "--", sb.bin, "collector"]
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60, text=True)
            F.check(p.returncode == 1, "without CAP_SYS_NICE: exit %r" % p.returncode)
            F.check("CAP_SYS_NICE" in p.stderr and "collector failed to start" in p.stderr,
                    "without CAP_SYS_NICE: the error does not say why: %s" % p.stderr[-600:])
            c_note = "C: refused without CAP_SYS_NICE (exit %r)" % p.returncode
        F.check(proc.stop() == 0, "processor did not stop cleanly")
        sb.check_clean_end()
        return sb.report("collector under SCHED_RR: %d real-time threads (%d librdkafka), "
                         "processor %d normal threads, 50 events stored once; %s" %
                         (len(rr), len(rdk), len(p_seen), c_note))


if __name__ == "__main__":
    sys.exit(main())
