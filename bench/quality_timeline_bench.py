#!/usr/bin/env python3
"""Adaptive quality over time: a scripted 75 s call in the NAT lab, drawn as a PNG.

    sudo bench/quality_timeline_bench.py [--out docs/quality-timeline.png] [--csv FILE]

Needs root (network namespaces), a release build (build-release/, or $PARLEY_BENCH_BUILD:
parley-relay and parley-call), espeak-ng and sox, and matplotlib (installed into the bench
venv by bench/setup-voice-bench; this script re-executes itself there).

Two parley-call processes behind port-restricted NATs (tests/natlab), the caller speaking
~75 s of espeak-ng speech, the call on the direct path. Impairments on the caller's router,
both directions unless said otherwise:

     0-10 s  clean
    10-20 s  5 % random loss        (nftables numgen random)
    20-30 s  clean
    30-40 s  15 % random loss
    40-50 s  48 kbit/s rate cap     (tc tbf on the caller's uplink)
    50-75 s  clean (recovery)

Both parties print a status line every 250 ms; the plot shows, over the callee's clock: the
profile each side sends with, the loss the callee measures, the path RTT, and the callee's
jitter-buffer delay and target. The CSV has every status line of both parties.
"""
import argparse
import csv
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_venv  # noqa: E402

ROOT, BUILD = bench_venv.ROOT, bench_venv.BUILD
sys.path.insert(0, os.path.join(ROOT, "tests", "natlab"))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

PHASES = [  # (start s, end s, label, kind, value)
    (10, 20, "5 % loss", "loss", 5),
    (30, 40, "15 % loss", "loss", 15),
    (40, 50, "48 kbit/s cap", "rate", 48),
]
TOTAL_S = 75




def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "quality-timeline.png"))
    ap.add_argument("--csv", default=None)
    o = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("quality_timeline_bench: needs root (the NAT lab)")
    bench_venv.ensure(__file__, ["numpy", "matplotlib"])
    import numpy as np
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import unittest
    import voice_audio as va
    from natlab import lines_of, wait_for_line
    import test_voice
    from test_voice import RATE, VoiceLab, statuses

    os.environ.setdefault("PARLEY_RELAY", os.path.join(BUILD, "src", "relay", "parley-relay"))
    os.environ.setdefault("PARLEY_CALL", os.path.join(BUILD, "examples", "parley-call"))

    class Holder(unittest.TestCase):  # VoiceLab registers its clean-ups on a TestCase
        def runTest(self):
            pass

    holder = Holder()
    try:
        v = VoiceLab(holder)
        _, x = va.read_wav(v.path("speech.wav"))
        reps = int(np.ceil((TOTAL_S + 3) * RATE / len(x)))
        va.write_wav(v.path("speech.wav"), RATE, np.concatenate([x] * reps))
        v.start_call(["--duration", str(TOTAL_S + 2)], profile=None)
        for p in (v.caller, v.callee):
            wait_for_line(p, r"^path relay -> direct", 10)
        router = v.a.router
        t0 = time.monotonic()
        marks = []  # (monotonic s since t0, callee line index) to map phases onto its clock

        def at(sec):
            while time.monotonic() - t0 < sec:
                time.sleep(0.05)  # the script's own clock (pacing the scenario)
            marks.append((sec, len(lines_of(v.callee))))

        for start, end, label, kind, value in PHASES:
            at(start)
            if kind == "loss":
                v.lab.add_table(router, "bench_loss",
                                "\tchain forward {\n\t\ttype filter hook forward priority "
                                "filter - 1; policy accept;\n\t\tmeta l4proto udp numgen "
                                f"random mod 100 < {value} drop\n\t}}\n")
            else:
                v.lab.run(router, ["tc", "qdisc", "add", "dev", "wan0", "root", "tbf", "rate",
                                   f"{value}kbit", "burst", "1600", "latency", "400ms"])
            at(end)
            if kind == "loss":
                v.lab.remove_table(router, "bench_loss")
            else:
                v.lab.run(router, ["tc", "qdisc", "del", "dev", "wan0", "root"])
        v.finish(timeout=60)
        callee = statuses(lines_of(v.callee))
        caller = statuses(lines_of(v.caller))
    finally:
        holder.doCleanups()

    # The callee's t at the scenario's start: its status line nearest the first mark.
    first_sec, first_idx = marks[0]
    before = [s for s in statuses(lines_of(v.callee)[:first_idx])]
    offset = (before[-1]["t"] if before else 0.0) - first_sec
    # Both parties count t from their own "call active", which are within milliseconds of
    # each other on the lab's one machine: one offset serves both.
    if o.csv:
        with open(o.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["party", "t_s", "path", "profile", "loss_pct", "rtt_ms", "jb_ms",
                        "target_ms", "kbps"])
            for name, rows, off in (("callee", callee, offset), ("caller", caller, offset)):
                for s in rows:
                    w.writerow([name, round(s["t"] - off, 2), s["path"], int(s["profile"]),
                                s["loss"], int(s["rtt"]), int(s["jb"]), int(s["target"]),
                                s["kbps"]])

    fig, ax = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    tc = [s["t"] - offset for s in callee]
    ta = [s["t"] - offset for s in caller]
    ax[0].step(ta, [s["profile"] for s in caller], where="post", label="caller sends")
    ax[0].step(tc, [s["profile"] for s in callee], where="post", label="callee sends",
               linestyle="--")
    ax[0].set_ylabel("profile\n(0 = best)")
    ax[0].set_ylim(4.5, -0.5)
    ax[0].legend(loc="lower right", fontsize=8)
    ax[1].plot(tc, [s["loss"] for s in callee], label="callee: loss of caller's frames")
    ax[1].plot(ta, [s["loss"] for s in caller], label="caller: loss of callee's frames",
               alpha=0.7)
    ax[1].set_ylabel("loss %\n(last second)")
    ax[1].legend(loc="upper left", fontsize=8)
    ax[2].plot(ta, [s["rtt"] for s in caller], label="caller's path RTT")
    ax[2].set_ylabel("RTT ms")
    ax[3].plot(tc, [s["jb"] for s in callee], label="callee jitter buffer delay")
    ax[3].plot(tc, [s["target"] for s in callee], label="target", linestyle="--")
    ax[3].set_ylabel("ms")
    ax[3].legend(loc="upper left", fontsize=8)
    ax[3].set_xlabel("seconds into the scenario")
    for a in ax:
        for start, end, label, _, _ in PHASES:
            a.axvspan(start, end, color="tab:red", alpha=0.08)
        a.grid(alpha=0.3)
    for start, end, label, _, _ in PHASES:
        ax[0].text((start + end) / 2, 4.3, label, ha="center", fontsize=8)
    fig.suptitle("parley adaptive quality: a direct call in the NAT lab "
                 f"({time.strftime('%Y-%m-%d')})")
    fig.tight_layout()
    fig.savefig(o.out, dpi=90)
    changes = [(round(s["t"] - offset, 1), int(s["profile"])) for a, s in
               zip([None] + caller, caller) if a is None or a["profile"] != s["profile"]]
    print(f"quality_timeline_bench: wrote {o.out}; caller's profile over time (s, profile): "
          f"{changes}")


if __name__ == "__main__":
    main()
