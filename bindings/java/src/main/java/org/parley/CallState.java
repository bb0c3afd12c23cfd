package org.parley;

/** The state of a {@link Call} ({@code parley_call_state}). */
public enum CallState {
  /** Invite sent, nothing heard yet. */
  INVITING(1),
  /** The callee's device is ringing. */
  RINGING(2),
  /** A call to us: accept or reject it. */
  INCOMING(3),
  /** Audio flows. */
  ACTIVE(4),
  /** Terminal. */
  ENDED(5),
  /** A value this binding does not know (a newer library). */
  UNKNOWN(-1);

  private final int code;

  CallState(int code) {
    this.code = code;
  }

  /** The C value ({@code PARLEY_CALL_*}). */
  public int code() {
    return code;
  }

  /** The constant for a C value; {@link #UNKNOWN} for values this binding does not know. */
  public static CallState of(int code) {
    for (CallState s : values()) {
      if (s.code == code) return s;
    }
    return UNKNOWN;
  }
}
