package org.parley;

/** Library-wide functions and constants of parley. */
public final class Parley {
  private Parley() {}

  /** An identity seed is 32 bytes ({@code PARLEY_SEED_LEN}). */
  public static final int SEED_LENGTH = 32;
  /** The largest application datagram, in bytes ({@code PARLEY_DATAGRAM_MAX}). */
  public static final int DATAGRAM_MAX = 1100;

  /** A room id is 32 hex characters ({@code PARLEY_ROOM_ID_HEX_LEN}). */
  public static final int ROOM_ID_LENGTH = 32;

  /** Log levels for {@link #setLogLevel(int)} ({@code parley_log_level}). */
  public static final int LOG_OFF = 0;
  public static final int LOG_ERROR = 1;
  public static final int LOG_WARN = 2;
  public static final int LOG_INFO = 3;
  public static final int LOG_DEBUG = 4;
  public static final int LOG_TRACE = 5;

  /** The linked library's version as {@code 0xMMmmpp} ({@code parley_version}). */
  public static int version() {
    return Native.version();
  }

  /** The C API version this binding is written for: it needs a library of at least this. */
  public static final String BINDING_VERSION = "0.2.0";

  /** The linked library's version, e.g. {@code "0.2.0"}. */
  public static @NonNull String versionString() {
    return Native.versionString();
  }

  /** The fixed English description of an error code ({@code parley_strerror}). */
  public static @NonNull String strerror(int code) {
    return Native.strerror(code);
  }

  /**
   * The C name of an error code as the linked library spells it ({@code parley_error_name}),
   * e.g. {@code "PARLEY_ERR_TIMEOUT"}; {@code "unknown"} for a number it does not know.
   */
  public static @NonNull String errorName(int code) {
    return Native.errorName(code);
  }

  /**
   * The C name of an event type ({@code parley_event_type_name}), e.g. {@code
   * "PARLEY_EVENT_CALL_STATE"}; {@code "unknown"} for a number the library does not know.
   */
  public static @NonNull String eventTypeName(int type) {
    return Native.eventTypeName(type);
  }

  /**
   * Sets the most verbose level parley logs (default {@link #LOG_WARN}); lines go to stderr
   * (on Android: nowhere visible; keep it at warn). Process-wide.
   *
   * @throws ParleyException INVALID_ARGUMENT for a level outside {@link #LOG_OFF}..{@link
   *     #LOG_TRACE}
   */
  public static void setLogLevel(int level) {
    Native.setLogLevel(level);
  }

  /**
   * Checks that {@code text} is a fingerprint (64 hex digits, either case, optionally grouped
   * with spaces, ':' or '-') and returns its canonical form: 64 lowercase hex digits.
   *
   * @throws ParleyException FINGERPRINT_INVALID
   */
  public static @NonNull String normalizeFingerprint(@NonNull String text) {
    if (text == null) throw new NullPointerException("text");
    return Native.normalizeFingerprint(text);
  }

  /**
   * A fresh random room id: 32 lowercase hex characters ({@code parley_room_id_generate}), to
   * share with the other members out of band and pass to {@link Context#joinRoom(String)}.
   * Same as {@link Room#generateId()}.
   */
  public static @NonNull String generateRoomId() {
    return Native.roomIdGenerate();
  }
}
