package org.parley;

/**
 * Whose words an event's error and text are ({@code parley_origin}). Only {@link #LOCAL} is
 * parley's own: show {@link #RELAY} and {@link #PEER} text as quoted, untrusted text.
 */
public enum Origin {
  /** This library. */
  LOCAL(0),
  /** The relay's signaling. */
  RELAY(1),
  /**
   * The peer's signaling, carried by the relay unauthenticated (so the relay could have
   * written it too).
   */
  PEER(2),
  /** A value this binding does not know (a newer library). */
  UNKNOWN(-1);

  private final int code;

  Origin(int code) {
    this.code = code;
  }

  /** The C value ({@code PARLEY_ORIGIN_*}). */
  public int code() {
    return code;
  }

  /** The constant for a C value; {@link #UNKNOWN} for values this binding does not know. */
  public static Origin of(int code) {
    for (Origin o : values()) {
      if (o.code == code) return o;
    }
    return UNKNOWN;
  }
}
