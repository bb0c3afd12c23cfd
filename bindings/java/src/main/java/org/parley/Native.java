package org.parley;

import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * The JNI entry points (bindings/java/jni/parley_jni.c). Package-private: the public classes
 * wrap them. Handles are C pointers carried as {@code long}.
 *
 * <p>Functions documented as throwing raise {@link ParleyException} from native code, with
 * {@code parley_last_error_message} captured on the failing thread. The audio functions
 * return the C result instead (no exception is allocated on the audio hot path).
 */
final class Native {
  private Native() {}

  static {
    // -Dorg.parley.jni.library=/abs/path/libparley_jni.so overrides the search of
    // java.library.path (handy for tests and for hosts that unpack the library themselves).
    String path = System.getProperty("org.parley.jni.library");
    if (path != null && !path.isEmpty()) {
      System.load(path);
    } else {
      System.loadLibrary("parley_jni");
    }
  }

  /** Forces the class (and so the library) to load. */
  static void load() {}

  // --- library ---
  static native int version();

  static native String versionString();

  static native String strerror(int code);

  /** parley_error_name: "PARLEY_ERR_TIMEOUT", or "unknown". */
  static native String errorName(int code);

  /** parley_event_type_name: "PARLEY_EVENT_CALL_STATE", or "unknown". */
  static native String eventTypeName(int type);

  /** Throws. */
  static native void setLogLevel(int level);

  /** Throws. */
  static native String normalizeFingerprint(String text);

  // --- identity (all throw) ---
  static native long identityGenerate();

  static native long identityFromSeed(byte[] seed);

  static native long identityLoadFile(String path);

  static native void identitySaveFile(long id, String path, boolean overwrite);

  static native String identityFingerprint(long id);

  static native byte[] identityPublicKey(long id);

  static native byte[] identityExportSeed(long id);

  static native byte[] identityCertificate(long id);

  static native void identityDestroy(long id);

  // --- context ---
  /** Allocates the glue state holding a global reference to {@code self}; no C context yet. */
  static native long contextAlloc(Context self);

  /** Frees what contextAlloc allocated; only when no C context was created on it. */
  static native void contextFree(long jctx);

  /** Creates the C context on {@code jctx} (events go to self.onNativeEvent). Throws. */
  static native void contextCreate(
      long jctx,
      long identity,
      String relayAddress,
      String relayFingerprint,
      String bindAddress,
      int sampleRate,
      int channels,
      int jitterMinMs,
      int jitterMaxMs,
      boolean disableDirect,
      boolean includeLoopback,
      int qualityMode,
      int qualityProfile,
      String bindAddress6,
      int portMin,
      int portMax,
      int qualityBestProfile,
      boolean dtx,
      int noPathTimeoutMs,
      boolean disableNetworkWatch,
      String stunServers,
      boolean portMapping);

  /**
   * parley_context_destroy, then frees the glue state and its global reference. Throws (and
   * frees nothing) on PARLEY_ERR_WRONG_THREAD: from the context's own listener thread.
   */
  static native void contextDestroy(long jctx);

  static native String contextFingerprint(long jctx);

  /** The configured or host-trusted relay fingerprint; null while there is none. Throws. */
  static native String contextRelayFingerprint(long jctx);

  /** parley_context_trust_relay. Throws. */
  static native void contextTrustRelay(long jctx, String relayFingerprint);

  /** parley_context_network_changed. Throws. */
  static native void contextNetworkChanged(long jctx);

  // --- calls ---
  /** Throws. */
  static native long callStart(long jctx, String peerFingerprint);

  /** Throws. */
  static native void callAccept(long call);

  /** Throws. */
  static native void callReject(long call);

  /** Throws. */
  static native void callHangup(long call);

  /** parley_call_destroy, then the global reference of the call's user data. */
  static native void callDestroy(long call);

  /**
   * Attaches {@code target} (a global reference to it; null: none) as the call's user data,
   * which its events hand back; the previous reference is deleted. Throws.
   */
  static native void callSetUserData(long call, Object target);

  /** The object attached to the call, or null (none, or a handle that is not live). */
  static native Object callUserData(long call);

  /** Throws. */
  static native String callPeer(long call);

  /** Frames taken, or a negative code. {@code offset} counts samples. */
  static native int callPush(long call, short[] pcm, int offset, int frames);

  /** 0 or a negative code. {@code offset} counts samples. */
  static native int callPull(long call, short[] out, int offset, int frames);

  /** As callPush, from a direct buffer; {@code offset} counts samples from its address. */
  static native int callPushDirect(long call, ShortBuffer pcm, int offset, int frames);

  /** As callPull, into a direct buffer. */
  static native int callPullDirect(long call, ShortBuffer out, int offset, int frames);

  /** As callPush, for float32 PCM. */
  static native int callPushFloat(long call, float[] pcm, int offset, int frames);

  /** As callPull, for float32 PCM. */
  static native int callPullFloat(long call, float[] out, int offset, int frames);

  /** As callPushDirect, for float32 PCM. */
  static native int callPushFloatDirect(long call, FloatBuffer pcm, int offset, int frames);

  /** As callPullDirect, for float32 PCM. */
  static native int callPullFloatDirect(long call, FloatBuffer out, int offset, int frames);

  static native int callSetMuted(long call, boolean muted);

  /** Throws. */
  static native void callSendDatagram(long call, byte[] data, int offset, int length);

  /** Fills {@code out} with CallStats.FIELDS values. Throws. */
  static native void callStats(long call, long[] out);

  // --- rooms ---
  /** A fresh room id (32 lowercase hex). Throws. */
  static native String roomIdGenerate();

  /** parley_room_join on the context of {@code jctx}; the new handle. Throws. */
  static native long roomJoin(long jctx, String roomId);

  /** Throws. */
  static native void roomLeave(long room);

  /** parley_room_destroy, then the global reference of the room's user data. */
  static native void roomDestroy(long room);

  /** As callSetUserData, for a room. Throws. */
  static native void roomSetUserData(long room, Object target);

  /** As callUserData, for a room. */
  static native Object roomUserData(long room);

  /** The members as of the latest room update. Throws. */
  static native RoomMember[] roomMembers(long room);

  /** {@code sequence} and {@code timestamp} are unsigned 32 bit. Throws. */
  static native void roomSend(
      long room, byte[] payload, int offset, int length, int sequence, int timestamp,
      int profile);
}
