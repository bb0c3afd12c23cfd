package org.parley;

/** The state of a {@link Context}'s connection to its relay ({@code parley_relay_state}). */
public enum RelayState {
  IDLE(0),
  CONNECTING(1),
  /** Calls can be placed and received. */
  REGISTERED(2),
  /** Reconnecting after a delay. */
  BACKOFF(3),
  /** The same identity registered elsewhere; not retried. */
  REPLACED(4),
  /**
   * No relay fingerprint was configured: the relay presented an identity ({@link
   * Context.Listener#onRelayUntrusted}) and nothing of ours reached it. Nothing goes on until
   * the host decides: {@link Context#trustRelay(String)}, or close the context.
   */
  UNTRUSTED(5),
  /** A value this binding does not know (a newer library). */
  UNKNOWN(-1);

  private final int code;

  RelayState(int code) {
    this.code = code;
  }

  /** The C value ({@code PARLEY_RELAY_*}). */
  public int code() {
    return code;
  }

  /** The constant for a C value; {@link #UNKNOWN} for values this binding does not know. */
  public static RelayState of(int code) {
    for (RelayState s : values()) {
      if (s.code == code) return s;
    }
    return UNKNOWN;
  }
}
