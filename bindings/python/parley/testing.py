"""Helpers for tests and examples: a parley-relay subprocess on loopback, and tone analysis.

A real call needs a relay. Tests and examples start the real parley-relay executable on an
ephemeral loopback port and read its fingerprint and address from stdout (with a deadline,
so a relay that fails to start cannot hang a test run). The tone helpers generate and
analyse the 16-bit PCM the calls carry; they use numpy when it is importable and fall back
to pure Python (a Goertzel scan) otherwise, so numpy stays optional.
"""

from __future__ import annotations

import array
import math
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from typing import List, Optional, Sequence, Tuple

_FINGERPRINT_LINE = re.compile(r"^fingerprint ([0-9a-f]{64})$")
_LISTENING_LINE = re.compile(r"^listening quic\+stun (\S+)")


class RelayProcess:
    """A parley-relay subprocess: ``with RelayProcess(path) as relay: relay.address,
    relay.fingerprint``. stdout and stderr are drained on a thread into ``output``."""

    def __init__(
        self,
        binary: Optional[str] = None,
        *,
        listen: str = "127.0.0.1:0",
        seed_dir: Optional[str] = None,
        log_level: str = "warn",
        extra_args: Sequence[str] = (),
        startup_timeout: float = 10.0,
    ) -> None:
        binary = binary or os.environ.get("PARLEY_RELAY")
        if not binary:
            raise RuntimeError("no parley-relay: pass its path or set PARLEY_RELAY")
        self._tmp = None
        if seed_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="parley-relay-")
            seed_dir = self._tmp.name
        self.output: List[str] = []
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        args = [binary, "--listen", listen, "--stun-alt", "none", "--http3", "off",
                "--seed", os.path.join(seed_dir, "relay.seed"), "--log-level", log_level,
                *extra_args]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._drain, name="parley-relay-output",
                                        daemon=True)
        self._reader.start()
        self.fingerprint = ""
        self.address = ""
        try:
            self._await_startup(startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)  # EOF

    def _await_startup(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not (self.fingerprint and self.address):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"parley-relay did not report its address within {timeout} s;"
                                   f" output: {self.output}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"parley-relay exited (code {self.process.wait()}) before "
                                   f"listening; output: {self.output}")
            m = _FINGERPRINT_LINE.match(line)
            if m:
                self.fingerprint = m.group(1)
            m = _LISTENING_LINE.match(line)
            if m:
                self.address = m.group(1)

    def stop(self, timeout: float = 5.0) -> Optional[int]:
        """Terminates the relay (SIGTERM, then SIGKILL after `timeout`). Idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return self.process.returncode

    def __enter__(self) -> "RelayProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Tones


def _numpy():
    try:
        import numpy

        return numpy
    except ImportError:
        return None


def sine(frequency: float, rate: int, start: int, frames: int, amplitude: float = 8000.0) -> bytes:
    """`frames` samples (int16 little-endian) of a sine, continuing from sample `start`."""
    np = _numpy()
    if np is not None:
        n = np.arange(start, start + frames)
        return (amplitude * np.sin(2 * np.pi * frequency * n / rate)).astype("<i2").tobytes()
    import array

    w = 2 * math.pi * frequency / rate
    a = array.array("h", (int(amplitude * math.sin(w * i)) for i in range(start, start + frames)))
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes()


def sine_float(frequency: float, rate: int, start: int, frames: int,
               amplitude: float = 8000.0 / 32768.0) -> "array.array":
    """`frames` float32 samples (array('f'), -1.0 .. 1.0) of a sine, continuing from sample
    `start`: sine() for Call.push_audio_float (the same default level)."""
    import array

    w = 2 * math.pi * frequency / rate
    return array.array("f", (amplitude * math.sin(w * i) for i in range(start, start + frames)))


def rms_float(pcm: Sequence[float]) -> float:
    """Root mean square of float samples (an array('f'), a list, a numpy array)."""
    n = len(pcm)
    return math.sqrt(sum(float(v) * float(v) for v in pcm) / n) if n else 0.0


def level_db(rms_value: float, full_scale: float = 1.0) -> float:
    """A level in dB relative to `full_scale` (32768 for int16 RMS, 1.0 for float)."""
    return 20 * math.log10(rms_value / full_scale) if rms_value > 0 else float("-inf")


def samples_of(pcm: bytes) -> List[int]:
    """int16 little-endian bytes as a list of ints (pure Python)."""
    import array

    a = array.array("h")
    a.frombytes(pcm[: len(pcm) // 2 * 2])
    if sys.byteorder == "big":
        a.byteswap()
    return a.tolist()


def rms(pcm: bytes) -> float:
    """Root mean square of int16 little-endian PCM."""
    np = _numpy()
    if np is not None:
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        return float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    xs = samples_of(pcm)
    return math.sqrt(sum(v * v for v in xs) / len(xs)) if xs else 0.0


def dominant_frequency(pcm: bytes, rate: int, use_numpy: Optional[bool] = None) -> float:
    """The frequency (Hz) with the most energy in mono int16 little-endian PCM, between
    50 Hz and min(4000 Hz, Nyquist). numpy: a Hann-windowed FFT with parabolic peak
    interpolation. Pure Python: the signal averaged down to 12 kHz, then a Goertzel scan in
    10 Hz steps refined in 0.5 Hz steps around the peak."""
    np = _numpy() if use_numpy in (None, True) else None
    if use_numpy and np is None:
        raise RuntimeError("numpy is not available")
    top = min(4000.0, rate / 2)
    if np is not None:
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        x = (x - x.mean()) * np.hanning(x.size)
        spectrum = np.abs(np.fft.rfft(x))
        freqs = np.fft.rfftfreq(x.size, 1.0 / rate)
        band = (freqs >= 50) & (freqs <= top)
        k = int(np.flatnonzero(band)[np.argmax(spectrum[band])])
        shift = 0.0
        if 0 < k < spectrum.size - 1:  # parabolic interpolation between bins
            a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
            shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c != 0 else 0.0
        return float((k + shift) * rate / x.size)
    return _goertzel_peak(samples_of(pcm), rate, top)


def _goertzel_peak(xs: List[int], rate: int, top: float) -> float:
    factor = max(1, rate // 12000)
    if factor > 1:  # a boxcar average: a crude low-pass, plenty for a tone well below 4 kHz
        xs = [sum(xs[i : i + factor]) / factor for i in range(0, len(xs) - factor + 1, factor)]
        rate //= factor
    top = min(top, rate / 2)
    if len(xs) < 16:
        return 0.0

    def hann(segment: List[float]) -> List[float]:
        n = len(segment)
        mean = sum(segment) / n
        return [(v - mean) * (0.5 - 0.5 * math.cos(2 * math.pi * i / (n - 1)))
                for i, v in enumerate(segment)]

    def power(window: List[float], f: float) -> float:
        coeff = 2 * math.cos(2 * math.pi * f / rate)
        s1 = s2 = 0.0
        for v in window:
            s1, s2 = v + coeff * s1 - s2, s1
        return s1 * s1 + s2 * s2 - coeff * s1 * s2

    # Coarse: 0.2 s from the middle, whose Hann main lobe (+-10 Hz) the 8 Hz steps cannot
    # straddle. Fine: the whole signal (main lobe +-2 bins) in steps of a quarter bin.
    short = max(16, rate // 5)
    middle = max(0, (len(xs) - short) // 2)
    window = hann(xs[middle : middle + short])
    coarse = max((power(window, f), f) for f in _steps(50.0, top, 8.0))[1]
    window = hann(xs)
    step = rate / len(xs) / 4
    fine = max((power(window, f), f) for f in _steps(coarse - 10, coarse + 10, step))[1]
    return fine


def _steps(low: float, high: float, step: float) -> List[float]:
    return [low + step * i for i in range(int((high - low) / step) + 1)]
