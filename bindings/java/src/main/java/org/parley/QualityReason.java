package org.parley;

/** Why the voice profile changed ({@code parley_quality_reason}). */
public enum QualityReason {
  /** No change yet (only in {@link CallStats#qualityReason}). */
  NONE(0),
  /** Packet loss above what the profile tolerates. */
  LOSS(1),
  /** A standing queue on the path: it carries less than sent. */
  CONGESTION(2),
  /** Arrival jitter above the profile's limit. */
  JITTER(3),
  /** An upgrade: conditions were good long enough. */
  RECOVERED(4),
  /** The peer or the relay (the judge) said so. */
  DIRECTIVE(5),
  /** A value this binding does not know (a newer library). */
  UNKNOWN(-1);

  private final int code;

  QualityReason(int code) {
    this.code = code;
  }

  /** The C value ({@code PARLEY_QUALITY_REASON_*}). */
  public int code() {
    return code;
  }

  /** The constant for a C value; {@link #UNKNOWN} for values this binding does not know. */
  public static QualityReason of(int code) {
    for (QualityReason r : values()) {
      if (r.code == code) return r;
    }
    return UNKNOWN;
  }
}
