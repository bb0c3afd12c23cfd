"""The tone analysis the call test relies on, with and without numpy."""

from __future__ import annotations

import pytest

from parley.testing import dominant_frequency, rms, sine


@pytest.mark.parametrize("use_numpy", [True, False])
@pytest.mark.parametrize("frequency", [440.0, 1013.0, 2999.5])
def test_dominant_frequency(use_numpy: bool, frequency: float) -> None:
    if use_numpy:
        pytest.importorskip("numpy")
    pcm = sine(frequency, 48000, 0, 48000)
    assert abs(dominant_frequency(pcm, 48000, use_numpy=use_numpy) - frequency) < 1.0


def test_rms() -> None:
    assert rms(b"\0\0" * 100) == 0
    assert abs(rms(sine(440, 48000, 0, 48000, amplitude=8000)) - 8000 / 2 ** 0.5) < 5
