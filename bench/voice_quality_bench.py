#!/usr/bin/env python3
"""Objective voice quality of parley's pipeline: PESQ MOS-LQO per profile and loss rate.

    bench/voice_quality_bench.py [--losses 0,5,10,20] [--seeds 3] [--jitter-ms J] [--markdown]

Runs bench/setup-voice-bench first (a venv with numpy and `pesq`, ITU-T P.862.2 wideband),
then re-executes itself inside that venv. Builds parley_voice_sim (build-release/, or
$PARLEY_BENCH_BUILD).

Speech: two talkers synthesised with espeak-ng (a male and a female voice, ~10 s each with
pauses, as P.862 asks for), resampled with sox to 48 kHz (the C API's default rate). Each goes
through parley_voice_sim: VoiceSender -> FrameSealer -> a simulated network (independent
random loss, 20 ms one-way delay, J ms of uniform jitter) -> FrameOpener -> VoiceReceiver
pulled in 10 ms chunks. The receiver's loss reports drive the sender's FEC hint exactly as
in a call.

Columns, per profile and loss rate (means over talkers x seeds):
  parley       the whole pipeline: measured-loss FEC, redundancy, jitter buffer, PLC;
  no feedback  the same pipeline with the FEC loss hint held at 0 (what FEC buys);
  codec alone  libopus through parley's thin wrappers, every packet decoded (the ceiling
               of the profile; the same at every loss rate, shown on the 0 % row).
PESQ is computed at 16 kHz (both files resampled by sox): P.862.2 wideband MOS-LQO, 1.04 to
4.64. A narrowband profile is scored against the wideband reference, as a listener would
hear it.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_venv  # noqa: E402

ROOT, BUILD = bench_venv.ROOT, bench_venv.BUILD

TALKERS = [
    ("en-us+m3", "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue "
                 "background. It is easy to tell the depth of a well. These days a chicken leg "
                 "is a rare dish."),
    ("en-us+f3", "Rice is often served in round bowls. The juice of lemons makes fine punch. "
                 "The box was thrown beside the parked truck. The hogs were fed chopped corn "
                 "and garbage."),
]




def build_sim():
    gen = ["-G", "Ninja"] if subprocess.run(["sh", "-c", "command -v ninja"],
                                            capture_output=True).returncode == 0 else []
    subprocess.run(["cmake", "-S", ROOT, "-B", BUILD] + gen +
                   ["-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DPARLEY_WERROR=ON"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", BUILD, "--parallel", str(os.cpu_count() or 1),
                    "--target", "parley_voice_sim"], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(BUILD, "bench", "parley_voice_sim")


def read_wav16(path):
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    # The files here are sox's or parley_voice_sim's: canonical 44-byte-header PCM mono.
    pos = 12
    rate = None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            rate = int.from_bytes(data[pos + 12:pos + 16], "little")
        if cid == b"data":
            return rate, np.frombuffer(data[pos + 8:pos + 8 + size], dtype="<i2")
        pos += 8 + size + (size & 1)
    raise ValueError(f"{path}: no data chunk")


def to16k(src, dst):
    subprocess.run(["sox", src, "-r", "16000", "-b", "16", "-c", "1", dst], check=True)


def mos(ref16, deg_wav, tmp):
    from pesq import pesq
    deg16 = os.path.join(tmp, "deg16.wav")
    to16k(deg_wav, deg16)
    _, ref = read_wav16(ref16)
    _, deg = read_wav16(deg16)
    n = min(len(ref), len(deg))
    return pesq(16000, ref[:n], deg[:n], "wb")


def sim(binary, args):
    r = subprocess.run([binary] + args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"voice_quality_bench: {' '.join(args)}: {r.stderr.strip()}")
    stats = {}
    for line in r.stdout.splitlines():
        for word in line.split()[1:]:
            if "=" in word:
                k, v = word.split("=", 1)
                stats[line.split()[0] + "." + k] = v
    return stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--losses", default="0,5,10,20")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--markdown", action="store_true")
    o = ap.parse_args()
    losses = [float(x) for x in o.losses.split(",")]
    bench_venv.ensure(__file__, ["numpy", "pesq"])
    binary = build_sim()
    profiles = []
    for line in subprocess.run([binary, "--list-profiles"], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        pid, name, frame_ms, bitrate, red = line.split()
        profiles.append((int(pid), name, int(frame_ms), int(bitrate), int(red)))

    with tempfile.TemporaryDirectory() as tmp:
        talkers = []
        for i, (voice, text) in enumerate(TALKERS):
            raw = os.path.join(tmp, f"raw{i}.wav")
            ref48 = os.path.join(tmp, f"ref{i}_48k.wav")
            ref16 = os.path.join(tmp, f"ref{i}_16k.wav")
            subprocess.run(["espeak-ng", "-v", voice, "-s", "145", "-g", "8", "-w", raw, text],
                           check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["sox", raw, "-r", "48000", "-c", "1", "-b", "16", ref48, "gain",
                            "-n", "-6", "pad", "0.5", "0.5"], check=True)
            to16k(ref48, ref16)
            talkers.append((ref48, ref16))
        out = os.path.join(tmp, "out.wav")

        load = open("/proc/loadavg").read().split()[:3]
        print(f"# PESQ P.862.2 (wideband MOS-LQO), {len(talkers)} espeak-ng talkers x "
              f"{o.seeds} seeds, random loss, 20 ms delay, {o.jitter_ms:g} ms jitter; "
              f"load {' '.join(load)}")
        if o.markdown:
            print("| profile | loss | parley MOS | no-feedback MOS | codec alone MOS | "
                  "parley / codec | FEC-recovered | RED-recovered | concealed |")
            print("|---|---|---|---|---|---|---|---|---|")
        else:
            print(f"{'profile':<18} {'loss':>5} {'parley':>7} {'no-fb':>7} {'codec':>7} "
                  f"{'ratio':>6} {'fec':>6} {'red':>6} {'concealed':>9}")
        for pid, name, frame_ms, _, _ in profiles:
            ref_scores = []
            for ref48, ref16 in talkers:
                sim(binary, ["--in", ref48, "--out", out, "--profile", str(pid), "--reference"])
                ref_scores.append(mos(ref16, out, tmp))
            codec = statistics.mean(ref_scores)
            for loss in losses:
                scores, nofb, fec, red, conc = [], [], 0, 0, 0
                for ref48, ref16 in talkers:
                    for seed in range(1, o.seeds + 1):
                        common = ["--in", ref48, "--out", out, "--profile", str(pid), "--loss",
                                  f"{loss:g}", "--jitter-ms", f"{o.jitter_ms:g}", "--seed",
                                  str(seed)]
                        st = sim(binary, common)
                        scores.append(mos(ref16, out, tmp))
                        fec += int(st["receiver.fec_recovered"])
                        red += int(st["receiver.red_recovered"])
                        conc += int(st["receiver.concealed"])
                        sim(binary, common + ["--no-feedback"])
                        nofb.append(mos(ref16, out, tmp))
                m, n = statistics.mean(scores), statistics.mean(nofb)
                codec_cell = f"{codec:.2f}" if loss == losses[0] else ""
                if o.markdown:
                    print(f"| {pid} {name} | {loss:g} % | {m:.2f} | {n:.2f} | {codec_cell} | "
                          f"{m / codec:.2f} | {fec} | {red} | {conc} |")
                else:
                    print(f"{str(pid) + ' ' + name:<18} {loss:>4g}% {m:>7.2f} {n:>7.2f} "
                          f"{codec_cell:>7} {m / codec:>6.2f} {fec:>6} {red:>6} {conc:>9}")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
