"""Audio for the voice tests and benchmarks: speech generation and objective comparison.

Speech comes from Debian's espeak-ng (a formant synthesiser: real phonemes, pitch contours and
pauses), resampled with sox. Comparisons are done on the waveforms with numpy:

* ``align``: the lag of ``out`` relative to ``ref`` by FFT cross-correlation, and the
  normalised correlation at that lag.
* ``segmental_snr``: SNR per 20 ms frame over the frames where the reference speaks, averaged
  in dB (clamped to [-10, 35] dB per frame as is customary, so silence and one bad frame do not
  dominate).
* ``lag_track``: the lag of each 20 ms speech block of ``out`` found by local search around the
  previous one, so a test sees where the playout inserted or dropped audio, to the sample.
"""

import os
import shutil
import struct
import subprocess
import tempfile
import wave

import numpy as np

SPEECH_A = ("The quick brown fox jumps over the lazy dog. "
            "Parley carries this sentence from one end of the call to the other. "
            "Every word should arrive once, in order, and on time.")
SPEECH_B = ("Hello from the other side of the call. "
            "Seven, eight, nine, ten. The jitter buffer keeps the voice smooth. "
            "Can you hear me clearly now?")


def have_speech_tools():
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def make_speech(path, text, rate=48000, lead_s=0.5, tail_s=0.5, voice="en", speed=150):
    """Writes ``text`` spoken by espeak-ng as 16-bit mono WAV at ``rate`` to ``path``, with
    ``lead_s`` and ``tail_s`` of silence around it."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", raw, text],
                       check=True, stdout=subprocess.DEVNULL)
        # 3 dB of headroom: resampling overshoots espeak's full-scale peaks.
        subprocess.run(["sox", raw, "-r", str(rate), "-c", "1", "-b", "16", path,
                        "gain", "-3", "pad", str(lead_s), str(tail_s)], check=True)


def read_wav(path):
    """(rate, float64 mono samples in [-1, 1))."""
    with wave.open(path, "rb") as w:
        rate, ch, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        if width != 2:
            raise ValueError(f"{path}: {8 * width}-bit samples, expected 16")
        data = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.float64) / 32768.0
    if ch > 1:
        data = data.reshape(-1, ch).mean(axis=1)
    return rate, data


def write_wav(path, rate, samples):
    pcm = np.clip(np.round(np.asarray(samples) * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def _xcorr(a, b):
    """Full cross-correlation c[k] = sum a[n + k] b[n], k from -(len(b)-1) to len(a)-1."""
    n = len(a) + len(b) - 1
    size = 1 << (n - 1).bit_length()
    c = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    return np.concatenate([c[-(len(b) - 1):], c[:len(a)]]) if len(b) > 1 else c[:len(a)]


def align(ref, out, max_lag=None):
    """(lag, correlation): ``out[n + lag]`` best matches ``ref[n]``. ``lag`` >= 0 means the
    output is late; ``max_lag`` (samples) bounds the search."""
    c = _xcorr(out, ref)
    lags = np.arange(-(len(ref) - 1), len(out))
    if max_lag is not None:
        keep = (lags >= 0) & (lags <= max_lag)
        c, lags = c[keep], lags[keep]
    i = int(np.argmax(c))
    lag = int(lags[i])
    return lag, correlation_at(ref, out, lag)


def overlap(ref, out, lag):
    """The parts of ``ref`` and ``out`` that line up at ``lag``."""
    if lag >= 0:
        o = out[lag:]
        n = min(len(ref), len(o))
        return ref[:n], o[:n]
    r = ref[-lag:]
    n = min(len(r), len(out))
    return r[:n], out[:n]


def correlation_at(ref, out, lag):
    r, o = overlap(ref, out, lag)
    den = np.sqrt(np.dot(r, r) * np.dot(o, o))
    return float(np.dot(r, o) / den) if den > 0 else 0.0


def speech_mask(x, rate, block_ms=20, rel_db=-35.0):
    """Per block: True where the block's energy is within ``rel_db`` of the loudest block."""
    b = rate * block_ms // 1000
    n = len(x) // b
    e = (x[:n * b].reshape(n, b) ** 2).mean(axis=1)
    if n == 0 or e.max() <= 0:
        return np.zeros(n, dtype=bool)
    return 10 * np.log10(e / e.max() + 1e-20) > rel_db


def segmental_snr(ref, out, lag, rate, block_ms=20):
    """Mean per-frame SNR (dB) over the reference's speech frames, with the output scaled by
    the least-squares gain (a codec may change the level slightly)."""
    r, o = overlap(ref, out, lag)
    b = rate * block_ms // 1000
    n = len(r) // b
    r, o = r[:n * b].reshape(n, b), o[:n * b].reshape(n, b)
    gain = float(np.sum(r * o) / max(np.sum(o * o), 1e-20))
    mask = speech_mask(r.reshape(-1), rate, block_ms)
    snrs = []
    for i in np.nonzero(mask)[0]:
        sig = np.sum(r[i] ** 2)
        noise = np.sum((r[i] - gain * o[i]) ** 2)
        snrs.append(np.clip(10 * np.log10(sig / max(noise, 1e-20)), -10.0, 35.0))
    return float(np.mean(snrs)) if snrs else float("nan")


def lag_track(ref, out, rate, first_lag, block_ms=20, window_ms=120, search_ms=150,
              rel_db=-30.0, tie=0.03):
    """For every speech block of ``ref`` (start index i), the lag at which it appears in
    ``out``. Each block is matched with a ``window_ms`` window centred on it (short windows of
    voiced speech correlate almost as well one pitch period off), searched within
    ``search_ms`` of the previous block's lag; among peaks within ``tie`` of the best, the one
    closest to the previous lag wins. Returns a list of (ref_start, lag, correlation) where
    the correlation is that of the block itself at the chosen lag."""
    b = rate * block_ms // 1000
    w = rate * window_ms // 1000
    s = rate * search_ms // 1000
    mask = speech_mask(ref, rate, block_ms, rel_db)
    lag = first_lag
    track = []
    for k in np.nonzero(mask)[0]:
        i = int(k) * b
        w0 = max(0, i + b // 2 - w // 2)
        win = ref[w0:w0 + w]
        lo = max(0, w0 + lag - s)
        hi = min(len(out), w0 + lag + s + len(win))
        if hi - lo < len(win) or len(win) < b:
            continue
        seg = out[lo:hi]
        n = len(seg) - len(win) + 1
        c = _xcorr(seg, win)[len(win) - 1:len(win) - 1 + n]
        energy = np.convolve(seg ** 2, np.ones(len(win)), mode="valid")[:n]
        norm = c / np.sqrt(np.maximum(energy * np.dot(win, win), 1e-20))
        lags = lo + np.arange(n) - w0
        best = norm.max()
        near = np.nonzero(norm >= best - tie)[0]
        j = int(near[np.argmin(np.abs(lags[near] - lag))])
        lag = int(lags[j])
        blk, o = ref[i:i + b], out[max(0, i + lag):max(0, i + lag) + b]
        den = np.sqrt(np.dot(blk, blk) * np.dot(o, o)) if len(o) == b else 0.0
        track.append((i, lag, float(np.dot(blk, o) / den) if den > 0 else 0.0))
    return track
