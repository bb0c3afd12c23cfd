package org.parley;

/**
 * A parley C API call failed. Carries the negative {@code PARLEY_ERR_*} code, its name, the
 * library's fixed description of the code ({@code parley_strerror}) and the detailed message
 * of the failure ({@code parley_last_error_message}, e.g. which field or file was wrong).
 *
 * <p>Unchecked, like {@link IllegalStateException}: most failures are programming errors
 * (a malformed fingerprint, a call that already ended) rather than conditions to recover
 * from. Compare {@link #code()} against the constants below.
 */
public class ParleyException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public static final int OK = 0;
  public static final int INVALID_ARGUMENT = -1;
  public static final int NO_MEMORY = -2;
  public static final int INTERNAL = -3;
  public static final int BUFFER_TOO_SMALL = -4;
  public static final int IO = -5;
  public static final int SEED_FILE_NOT_FOUND = -6;
  public static final int SEED_FILE_INVALID = -7;
  public static final int SEED_FILE_PERMISSIONS = -8;
  public static final int SEED_FILE_EXISTS = -9;
  public static final int CERT_MALFORMED = -10;
  public static final int CERT_KEY_TYPE = -11;
  public static final int FINGERPRINT_INVALID = -12;
  public static final int CRYPTO = -13;
  public static final int CLOSED = -14;
  public static final int STUN_MALFORMED = -15;
  public static final int STUN_UNKNOWN_ATTRIBUTE = -16;
  public static final int STUN_INTEGRITY = -17;
  public static final int STUN_FINGERPRINT = -18;
  public static final int TIMEOUT = -19;
  public static final int ADDRESS_INVALID = -20;
  public static final int CANDIDATE_INVALID = -21;
  public static final int SOCKET = -22;
  public static final int PEER_IDENTITY = -23;
  public static final int TRANSPORT = -24;
  public static final int MESSAGE_TOO_LARGE = -25;
  public static final int QUEUE_FULL = -26;
  public static final int SIGNAL_MALFORMED = -27;
  public static final int SIGNAL_UNKNOWN_TYPE = -28;
  public static final int SIGNAL_VERSION = -29;
  public static final int MEDIA_MALFORMED = -30;
  public static final int PEER_UNAVAILABLE = -31;
  public static final int CALL_NOT_FOUND = -32;
  public static final int RATE_LIMITED = -33;
  public static final int LIMIT_REACHED = -34;
  public static final int CALL_REJECTED = -35;
  public static final int NOT_REGISTERED = -36;
  public static final int MEDIA_AUTH = -37;
  public static final int MEDIA_REPLAY = -38;
  public static final int MEDIA_KEY = -39;
  public static final int ICE_FAILED = -40;
  public static final int CODEC = -41;
  public static final int AUDIO_FORMAT = -42;
  public static final int WRONG_THREAD = -43;
  /** A handle that is not live (already freed or released). */
  public static final int INVALID_HANDLE = -44;
  /** The call has ended: the request needs a call that is still going. */
  public static final int CALL_ENDED = -45;
  /** The call had no path to the peer (relay gone, no direct path) for too long. */
  public static final int NO_PATH = -46;
  /** A host name (the relay's) does not resolve. */
  public static final int NAME_NOT_FOUND = -47;
  /** A host name resolves to no address the context can use. */
  public static final int NO_USABLE_ADDRESS = -48;
  /** Two addresses that must share a family do not (bind address and relay address). */
  public static final int ADDRESS_FAMILY = -49;
  /** No connection could be made to any address a host name resolved to. */
  public static final int ALL_ADDRESSES_FAILED = -50;
  /** Room send or leave when not a member (not joined yet, left, refused); was -32. */
  public static final int NOT_A_MEMBER = -51;
  /** A datagram or statistics before the call is active; was -32. */
  public static final int CALL_NOT_ACTIVE = -52;
  /** Accepting or rejecting an outgoing call, or one already answered; was -32. */
  public static final int WRONG_CALL_STATE = -53;

  // Index: -code. The names are the C enumerators (parley.h), which never change.
  private static final String[] NAMES = {
    "PARLEY_OK",
    "PARLEY_ERR_INVALID_ARGUMENT",
    "PARLEY_ERR_NO_MEMORY",
    "PARLEY_ERR_INTERNAL",
    "PARLEY_ERR_BUFFER_TOO_SMALL",
    "PARLEY_ERR_IO",
    "PARLEY_ERR_SEED_FILE_NOT_FOUND",
    "PARLEY_ERR_SEED_FILE_INVALID",
    "PARLEY_ERR_SEED_FILE_PERMISSIONS",
    "PARLEY_ERR_SEED_FILE_EXISTS",
    "PARLEY_ERR_CERT_MALFORMED",
    "PARLEY_ERR_CERT_KEY_TYPE",
    "PARLEY_ERR_FINGERPRINT_INVALID",
    "PARLEY_ERR_CRYPTO",
    "PARLEY_ERR_CLOSED",
    "PARLEY_ERR_STUN_MALFORMED",
    "PARLEY_ERR_STUN_UNKNOWN_ATTRIBUTE",
    "PARLEY_ERR_STUN_INTEGRITY",
    "PARLEY_ERR_STUN_FINGERPRINT",
    "PARLEY_ERR_TIMEOUT",
    "PARLEY_ERR_ADDRESS_INVALID",
    "PARLEY_ERR_CANDIDATE_INVALID",
    "PARLEY_ERR_SOCKET",
    "PARLEY_ERR_PEER_IDENTITY",
    "PARLEY_ERR_TRANSPORT",
    "PARLEY_ERR_MESSAGE_TOO_LARGE",
    "PARLEY_ERR_QUEUE_FULL",
    "PARLEY_ERR_SIGNAL_MALFORMED",
    "PARLEY_ERR_SIGNAL_UNKNOWN_TYPE",
    "PARLEY_ERR_SIGNAL_VERSION",
    "PARLEY_ERR_MEDIA_MALFORMED",
    "PARLEY_ERR_PEER_UNAVAILABLE",
    "PARLEY_ERR_CALL_NOT_FOUND",
    "PARLEY_ERR_RATE_LIMITED",
    "PARLEY_ERR_LIMIT_REACHED",
    "PARLEY_ERR_CALL_REJECTED",
    "PARLEY_ERR_NOT_REGISTERED",
    "PARLEY_ERR_MEDIA_AUTH",
    "PARLEY_ERR_MEDIA_REPLAY",
    "PARLEY_ERR_MEDIA_KEY",
    "PARLEY_ERR_ICE_FAILED",
    "PARLEY_ERR_CODEC",
    "PARLEY_ERR_AUDIO_FORMAT",
    "PARLEY_ERR_WRONG_THREAD",
    "PARLEY_ERR_INVALID_HANDLE",
    "PARLEY_ERR_CALL_ENDED",
    "PARLEY_ERR_NO_PATH",
    "PARLEY_ERR_NAME_NOT_FOUND",
    "PARLEY_ERR_NO_USABLE_ADDRESS",
    "PARLEY_ERR_ADDRESS_FAMILY",
    "PARLEY_ERR_ALL_ADDRESSES_FAILED",
    "PARLEY_ERR_NOT_A_MEMBER",
    "PARLEY_ERR_CALL_NOT_ACTIVE",
    "PARLEY_ERR_WRONG_CALL_STATE",
  };

  private final int code;
  private final String description;
  private final String detail;

  /**
   * @param code a negative {@code PARLEY_ERR_*} code
   * @param description the code's fixed description ({@code parley_strerror})
   * @param detail what exactly failed ({@code parley_last_error_message}); may be empty
   */
  public ParleyException(int code, @Nullable String description, @Nullable String detail) {
    super(format(code, description, detail));
    this.code = code;
    this.description = description == null ? "" : description;
    this.detail = detail == null ? "" : detail;
  }

  /** Builds the exception for {@code code} without a detail message (audio paths). */
  static ParleyException of(int code) {
    return new ParleyException(code, Native.strerror(code), "");
  }

  /** The negative {@code PARLEY_ERR_*} code, e.g. {@link #FINGERPRINT_INVALID}. */
  public int code() {
    return code;
  }

  /** The C name of the code, e.g. {@code "PARLEY_ERR_FINGERPRINT_INVALID"}. */
  public @NonNull String errorName() {
    return nameOf(code);
  }

  /** The code's fixed English description ({@code parley_strerror}). */
  public @NonNull String description() {
    return description;
  }

  /** The detailed message of this failure ({@code parley_last_error_message}); may be "". */
  public @NonNull String detail() {
    return detail;
  }

  /**
   * The C name of an error code as the linked library spells it ({@code parley_error_name}), so
   * a code newer than this binding is named too; {@code "PARLEY_ERR_UNKNOWN(n)"} for a code
   * neither knows.
   */
  public static @NonNull String nameOf(int code) {
    String name = null;
    try {
      name = Native.errorName(code);
    } catch (LinkageError e) {
      // No JNI library (e.g. an exception built in a unit test without it): the table.
    }
    if (name != null && name.startsWith("PARLEY_")) return name;
    if (code <= 0 && -code < NAMES.length) return NAMES[-code];
    return "PARLEY_ERR_UNKNOWN(" + code + ")";
  }

  private static String format(int code, String description, String detail) {
    StringBuilder b = new StringBuilder();
    b.append(nameOf(code)).append(" (").append(code).append(')');
    if (description != null && !description.isEmpty()) b.append(": ").append(description);
    if (detail != null && !detail.isEmpty()) b.append(": ").append(detail);
    return b.toString();
  }
}
