package org.parley;

/** How a {@link Context} chooses the voice profile it sends with. */
public enum QualityMode {
  /** The profile follows the path: loss, congestion and jitter (the default). */
  ADAPTIVE(0),
  /** Always send with {@link Context.Config.Builder#qualityProfile(int)}. */
  FIXED(1);

  private final int code;

  QualityMode(int code) {
    this.code = code;
  }

  /** The C value ({@code PARLEY_QUALITY_MODE_ADAPTIVE} / {@code PARLEY_QUALITY_MODE_FIXED}). */
  public int code() {
    return code;
  }
}
