"""A real voice call on loopback: parley-relay and two parley-call processes, speech files in,
recordings out, compared objectively.

Environment: PARLEY_RELAY, PARLEY_CALL (binaries). Needs espeak-ng and sox (scripts/setup-deps).
With PARLEY_RELAY_OTHER and PARLEY_CALL_OTHER (the same programs built on the other TLS
backend, -DPARLEY_TLS), CrossBackendVoiceCall also calls between the two backends: each side's
relay, caller and callee from different builds, the direct path (pinned mutual TLS) required,
and a wrong relay pin refused with the same error on every pairing.

Thresholds, and why:
* Block by block (voice_audio.lag_track over the loud 20 ms blocks of the input): at least
  80 % of them found in the recording at correlation >= 0.80, and at most 3 playout shifts
  (a lag change of more than 0.5 ms between adjacent blocks). Opus at the best profile keeps
  the waveform of voiced speech, so an intact path matches nearly every loud block; anything
  broken (a wrong sample rate, concealment instead of audio, a channel mix-up, frames skipped
  or doubled again and again) fails one or the other. A few shifts are the jitter buffer's
  answer to a CPU stall (ASan on two busy cores gave whole-utterance correlations of 0.70 and
  0.72 at one lag, the second with profile 0 in force and 3 frames concealed, where a quiet
  machine gives 0.96), so they are counted and printed, not failed. The whole-utterance correlation and segmental SNR at one lag are printed too;
  with no shift the SNR must be >= 5 dB (an intact codec path is well above it).
* Lag (mouth-to-ear on loopback) between 20 ms (one frame must be captured before it can be
  sent) and 200 ms (frame + jitter-buffer maximum under no load); printed.

Both processes send with the best profile, pinned (--profile 0): the thresholds are the best
profile's (profile 4 measures 0.72 / 2.8 dB whole-utterance here). Adaptation is the quality
tests' subject (tests/natlab, tests/unit/quality).
"""

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "support"))
import voice_audio as va  # noqa: E402

RATE = 48000


def binary(env, name):
    path = os.environ.get(env)
    if not path:
        raise unittest.SkipTest(f"{env} not set")
    return path


class Proc:
    """A child process whose stdout lines are collected by a thread."""

    def __init__(self, argv):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pattern, timeout):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.thread.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r} from {self.argv[0]}:\n"
                                         + "\n".join(self.lines[-30:]))
                self.cond.wait(left)

    def finish(self, timeout):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.argv[0]} did not finish:\n" + "\n".join(self.lines[-30:]))
        self.thread.join(5)
        return self.proc.returncode

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(5)
        self.proc.stdout.close()

    def output(self):
        with self.cond:
            return list(self.lines)


class VoiceCallBase(unittest.TestCase):
    """A relay and the helpers to place and judge calls; the tests are in the subclasses."""

    def setUp(self):
        if not va.have_speech_tools():
            self.skipTest("espeak-ng/sox missing (scripts/setup-deps installs them)")
        self.relay_bin = binary("PARLEY_RELAY", "parley-relay")
        self.call_bin = binary("PARLEY_CALL", "parley-call")
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.procs = []
        self.relay_fp, self.relay_addr = self.start_relay(self.relay_bin, "relay.seed")

    def start_relay(self, relay_bin, seed):
        relay = self.spawn([relay_bin, "--listen", "127.0.0.1:0", "--stun-alt", "none",
                            "--seed", self.path(seed), "--log-level", "warn"])
        fp = relay.wait_for(r"^fingerprint ([0-9a-f]{64})$", 10).group(1)
        addr = relay.wait_for(r"^listening quic\+stun (\S+)", 10).group(1)
        return fp, addr

    def tearDown(self):
        for p in self.procs:
            p.stop()
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def spawn(self, argv):
        p = Proc(argv)
        self.procs.append(p)
        return p

    def call(self, extra=(), caller_bin=None, callee_bin=None, relay=None):
        """Runs one call: the caller says SPEECH_A, the callee SPEECH_B. Returns both
        processes' output lines. `relay` is (fingerprint, address), this build's by default."""
        caller_bin = caller_bin or self.call_bin
        callee_bin = callee_bin or self.call_bin
        relay_fp, relay_addr = relay or (self.relay_fp, self.relay_addr)
        va.make_speech(self.path("a.wav"), va.SPEECH_A, RATE)
        va.make_speech(self.path("b.wav"), va.SPEECH_B, RATE)
        common = ["--relay", relay_addr, "--relay-fp", relay_fp,
                  "--bind", "127.0.0.1:0", "--loopback", "--profile", "0", *extra]
        callee = self.spawn([callee_bin, "--seed", self.path("callee.seed"), "--answer",
                             "--in", self.path("b.wav"), "--out", self.path("callee_out.wav"),
                             "--fingerprint-file", self.path("callee.fp"), *common])
        fp = callee.wait_for(r"^fingerprint ([0-9a-f]{64})$", 10).group(1)
        callee.wait_for(r"^relay registered$", 10)
        caller = self.spawn([caller_bin, "--seed", self.path("caller.seed"), "--call", fp,
                             "--in", self.path("a.wav"), "--out", self.path("caller_out.wav"),
                             "--tail", "1.5", *common])
        self.assertEqual(caller.finish(60), 0, "\n".join(caller.output()))
        self.assertEqual(callee.finish(30), 0, "\n".join(callee.output()))
        self.outputs = {"caller": caller.output(), "callee": callee.output()}
        return caller.output(), callee.output()

    def call_report(self):
        """What each side said about quality and its last status line, for a failure message."""
        lines = []
        for who, out in self.outputs.items():
            status = [l for l in out if l.startswith("status ")]
            lines += [f"{who}: {l}" for l in out if l.startswith("quality ")]
            lines += [f"{who}: {status[-1]}"] if status else []
        return "\n".join(lines)

    def check_direction(self, name, ref_path, out_path):
        rate, ref = va.read_wav(ref_path)
        rate2, out = va.read_wav(out_path)
        self.assertEqual(rate, rate2)
        lag, corr = va.align(ref, out, max_lag=rate)  # at most 1 s late
        snr = va.segmental_snr(ref, out, lag, rate)
        track = va.lag_track(ref, out, rate, lag, rel_db=-20.0)
        good = [(i, l) for i, l, c in track if c >= 0.80]
        block = rate * 20 // 1000
        shifts = [(round(i1 / rate, 2), l1 - l0)
                  for (i0, l0), (i1, l1) in zip(good, good[1:])
                  if i1 - i0 == block and abs(l1 - l0) > rate // 2000]
        share = len(good) / len(track) if track else 0.0
        print(f"{name}: lag {lag / rate * 1000:.1f} ms, correlation {corr:.3f}, "
              f"segmental SNR {snr:.1f} dB; loud blocks matched {len(good)}/{len(track)}, "
              f"playout shifts (s, samples) {shifts}", flush=True)
        why = f"{name}\n{self.call_report()}"
        self.assertGreater(len(track), 50, f"{name}: too little speech to judge")
        self.assertGreaterEqual(share, 0.80, why)
        self.assertLessEqual(len(shifts), 3, why)
        if not shifts:
            self.assertGreaterEqual(snr, 5.0, why)
        self.assertGreaterEqual(lag, rate * 20 // 1000, name)
        self.assertLessEqual(lag, rate * 200 // 1000, name)
        return lag, corr, snr



class LoopbackVoiceCall(VoiceCallBase):
    def test_speech_both_ways_relay_only(self):
        caller, callee = self.call(["--no-direct"])
        self.check_direction("caller->callee", self.path("a.wav"), self.path("callee_out.wav"))
        self.check_direction("callee->caller", self.path("b.wav"), self.path("caller_out.wav"))
        self.assertTrue(any(l.startswith("status ") and "path=relay" in l for l in caller))

    def test_speech_both_ways_with_direct_path(self):
        caller, callee = self.call()
        self.check_direction("caller->callee", self.path("a.wav"), self.path("callee_out.wav"))
        self.check_direction("callee->caller", self.path("b.wav"), self.path("caller_out.wav"))
        self.assertTrue(any(l.startswith("path relay -> direct") for l in caller),
                        "\n".join(caller))



class CrossBackendVoiceCall(VoiceCallBase):
    """This build against the other TLS backend's build: real processes, pins on every hop."""

    def setUp(self):
        self.other_relay_bin = os.environ.get("PARLEY_RELAY_OTHER")
        self.other_call_bin = os.environ.get("PARLEY_CALL_OTHER")
        if not self.other_relay_bin or not self.other_call_bin:
            self.skipTest("PARLEY_RELAY_OTHER / PARLEY_CALL_OTHER not set (the other TLS "
                          "backend's build; scripts/test-all sets them)")
        super().setUp()
        self.other_relay = self.start_relay(self.other_relay_bin, "other_relay.seed")

    def direct_call_both_ways(self, caller_bin, callee_bin, relay):
        caller, callee = self.call(caller_bin=caller_bin, callee_bin=callee_bin, relay=relay)
        self.check_direction("caller->callee", self.path("a.wav"), self.path("callee_out.wav"))
        self.check_direction("callee->caller", self.path("b.wav"), self.path("caller_out.wav"))
        self.assertTrue(any(l.startswith("path relay -> direct") for l in caller),
                        "\n".join(caller))
        self.assertTrue(any(l.startswith("path relay -> direct") for l in callee),
                        "\n".join(callee))

    def test_other_backend_calls_this_one_through_this_relay(self):
        self.direct_call_both_ways(self.other_call_bin, self.call_bin,
                                   (self.relay_fp, self.relay_addr))

    def test_this_backend_calls_the_other_through_the_other_relay(self):
        self.direct_call_both_ways(self.call_bin, self.other_call_bin, self.other_relay)

    def test_a_wrong_relay_pin_fails_alike_on_both_backends(self):
        wrong = "ab" * 32
        seen = {}
        for cname, cbin in (("this", self.call_bin), ("other", self.other_call_bin)):
            for rname, (_, addr) in (("this", (self.relay_fp, self.relay_addr)),
                                     ("other", self.other_relay)):
                p = self.spawn([cbin, "--seed", self.path(f"pin-{cname}.seed"), "--answer",
                                "--relay", addr, "--relay-fp", wrong, "--bind", "127.0.0.1:0",
                                "--loopback", "--out", self.path(f"pin-{cname}-{rname}.wav")])
                m = p.wait_for(r"^relay lost (-?\d+): (.*)$", 20)
                seen[(cname, rname)] = int(m.group(1))
                p.stop()
        print(f"wrong relay pin: {seen}", flush=True)
        self.assertEqual(len(set(seen.values())), 1, seen)
        self.assertLess(next(iter(seen.values())), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
