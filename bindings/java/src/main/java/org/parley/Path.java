package org.parley;

/** The path a call's media takes ({@code parley_path}). */
public enum Path {
  /** Through the relay (which cannot read or forge the audio). */
  RELAY(0),
  /** Peer to peer, identity-pinned QUIC. */
  DIRECT(1),
  /** A value this binding does not know (a newer library). */
  UNKNOWN(-1);

  private final int code;

  Path(int code) {
    this.code = code;
  }

  /** The C value ({@code PARLEY_PATH_*}). */
  public int code() {
    return code;
  }

  /** The constant for a C value; {@link #UNKNOWN} for values this binding does not know. */
  public static Path of(int code) {
    for (Path p : values()) {
      if (p.code == code) return p;
    }
    return UNKNOWN;
  }
}
