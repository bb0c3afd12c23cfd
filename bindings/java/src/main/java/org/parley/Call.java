package org.parley;

import java.nio.Buffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One call ({@code parley_call}): placed with {@link Context#call(String)} or received in
 * {@link Context.Listener#onIncomingCall(Call)}. There is exactly one Call object per native
 * call handle, so listener events and the object the app keeps compare with {@code ==}.
 * {@link #close()} it when done (after {@link CallState#ENDED}, or to end it); closing the
 * {@link Context} closes its calls too.
 *
 * <h2>Audio threads</h2>
 *
 * <p>PCM is 16-bit ({@code short}) or float32 ({@code float}, nominally -1.0 .. 1.0, as
 * AAudio/Oboe and game engines hand it over; values beyond are clipped, NaN is silence),
 * interleaved, in the context's format ({@link Context.Config.Builder#sampleRate(int)},
 * {@link Context.Config.Builder#channels(int)}). Every {@code pushAudio}/{@code pullAudio}
 * has a {@code float[]} and a {@link FloatBuffer} overload with the same rules; do not mix the
 * two formats on one call at the same time.
 * {@link #pushAudio} (microphone) and {@link #pullAudio} (speaker) are real-time safe: they
 * never lock, block or allocate (arrays are pinned with {@code GetPrimitiveArrayCritical}, or
 * use the direct {@link ShortBuffer} variants). Each must be called from one thread at a
 * time: one capture thread pushes, one playout thread pulls (e.g. Android's AudioRecord and
 * AudioTrack threads, or an Oboe callback through your own JNI), in whatever chunk size the
 * audio device uses. Pull exactly as many frames as the device plays, on its clock: parley's
 * jitter buffer fills gaps with concealment and silence.
 *
 * <p>Closing a call while an audio thread is inside push or pull is safe: the native handle
 * is released when the last of them returns.
 *
 * <p>Every other method may be called from any thread, including the context's listener.
 *
 * <p>The native handle carries this object as its user data ({@code parley_call_set_user_data}),
 * which is how every event names it; {@link #setTag(Object)} attaches the application's own.
 */
public final class Call implements AutoCloseable {
  private final Context context;
  private final long handle;
  private final boolean incoming;
  private final int channels;
  private volatile String peer;
  private volatile CallState state;
  private volatile Path path = Path.RELAY;
  private volatile @Nullable Object tag;

  // 1 for the owner (dropped by close) + 1 per method running on the handle; the handle is
  // released when it reaches 0.
  private final AtomicInteger refs = new AtomicInteger(1);
  private volatile boolean closed;
  private final Object closeLock = new Object();

  Call(Context context, long handle, boolean incoming, @Nullable String peer, int channels) {
    this.context = context;
    this.handle = handle;
    this.incoming = incoming;
    this.peer = peer != null && !peer.isEmpty() ? peer : null;
    this.channels = channels;
    this.state = incoming ? CallState.INCOMING : CallState.INVITING;
  }

  /** The context the call belongs to. */
  public @NonNull Context context() {
    return context;
  }

  /** The application's own data for this call (e.g. its contact), or null; parley never looks
   * at it. */
  public @Nullable Object tag() {
    return tag;
  }

  /** Attaches the application's own data (null: none). */
  public void setTag(@Nullable Object tag) {
    this.tag = tag;
  }

  /** True for a call we received, false for one we placed. */
  public boolean isIncoming() {
    return incoming;
  }

  /** The last state the listener was told about. */
  public @NonNull CallState state() {
    return state;
  }

  /** The path the media takes, as last reported by {@link Context.Listener#onPathChanged}. */
  public @NonNull Path path() {
    return path;
  }

  /** The peer's fingerprint (64 lowercase hex). */
  public @NonNull String peerFingerprint() {
    String p = peer;
    if (p == null) {
      acquireOrThrow();
      try {
        p = Native.callPeer(handle);
      } finally {
        release();
      }
      peer = p;
    }
    return p;
  }

  /**
   * Accepts an incoming call ({@code parley_call_accept}); it becomes {@link
   * CallState#ACTIVE}.
   *
   * @throws ParleyException CALL_ENDED, WRONG_CALL_STATE (not an incoming call, or already
   *     accepted), NOT_REGISTERED, CLOSED
   */
  public void accept() {
    acquireOrThrow();
    try {
      Native.callAccept(handle);
    } finally {
      release();
    }
  }

  /**
   * Rejects an incoming call ({@code parley_call_reject}); the caller sees {@link
   * CallState#ENDED} with {@link ParleyException#CALL_REJECTED}.
   *
   * @throws ParleyException CALL_ENDED, WRONG_CALL_STATE, NOT_REGISTERED, CLOSED
   */
  public void reject() {
    acquireOrThrow();
    try {
      Native.callReject(handle);
    } finally {
      release();
    }
  }

  /**
   * Ends the call ({@code parley_call_hangup}); the peer sees {@link CallState#ENDED} with
   * error 0.
   *
   * @throws ParleyException CALL_ENDED (already ended), CLOSED
   */
  public void hangup() {
    acquireOrThrow();
    try {
      Native.callHangup(handle);
    } finally {
      release();
    }
  }

  /**
   * While muted the peer hears comfort noise. Real-time safe. A no-op once closed.
   */
  public void setMuted(boolean muted) {
    if (!acquire()) return;
    try {
      int r = Native.callSetMuted(handle, muted);
      if (r < 0) throw ParleyException.of(r);
    } finally {
      release();
    }
  }

  /** {@link #pushAudio(short[], int, int)} from the start of {@code pcm}. */
  public int pushAudio(short @NonNull [] pcm, int frames) {
    return pushAudio(pcm, 0, frames);
  }

  /**
   * Hands {@code frames} frames of microphone PCM, starting at frame {@code offsetFrames} of
   * {@code pcm}, to the encoder ({@code parley_call_push_audio}). Real-time safe; one capture
   * thread at a time. Audio pushed before the call is {@link CallState#ACTIVE} is dropped.
   *
   * @return the frames taken: fewer than {@code frames} when about 200 ms are already waiting
   * @throws ParleyException CALL_ENDED once the call ended, CLOSED once closed
   * @throws IndexOutOfBoundsException when the range exceeds the array
   */
  public int pushAudio(short @NonNull [] pcm, int offsetFrames, int frames) {
    checkRange(pcm.length, offsetFrames, frames);
    if (!acquire()) throw closedException();
    int r;
    try {
      r = Native.callPush(handle, pcm, offsetFrames * channels, frames);
    } finally {
      release();
    }
    if (r < 0) throw ParleyException.of(r);
    return r;
  }

  /**
   * As {@link #pushAudio(short[], int, int)}, from a direct buffer in native byte order,
   * starting at its position (which is not moved).
   */
  public int pushAudio(@NonNull ShortBuffer pcm, int frames) {
    checkDirect(pcm);
    checkRange(pcm.remaining(), 0, frames);
    if (!acquire()) throw closedException();
    int r;
    try {
      r = Native.callPushDirect(handle, pcm, pcm.position(), frames);
    } finally {
      release();
    }
    if (r < 0) throw ParleyException.of(r);
    return r;
  }

  /** {@link #pullAudio(short[], int, int)} into the start of {@code out}. */
  public boolean pullAudio(short @NonNull [] out, int frames) {
    return pullAudio(out, 0, frames);
  }

  /**
   * Writes exactly {@code frames} frames of playout PCM into {@code out} from frame {@code
   * offsetFrames} ({@code parley_call_pull_audio}): the peer's voice through the jitter
   * buffer, concealment where frames are missing, silence before the call is active. Real-time
   * safe; one playout thread at a time.
   *
   * @return true while the call is live; false once it ended or was closed ({@code out} then
   *     holds silence)
   * @throws IndexOutOfBoundsException when the range exceeds the array
   */
  public boolean pullAudio(short @NonNull [] out, int offsetFrames, int frames) {
    checkRange(out.length, offsetFrames, frames);
    if (!acquire()) {
      java.util.Arrays.fill(out, offsetFrames * channels, (offsetFrames + frames) * channels,
          (short) 0);
      return false;
    }
    int r;
    try {
      r = Native.callPull(handle, out, offsetFrames * channels, frames);
    } finally {
      release();
    }
    return pullResult(r);
  }

  /**
   * As {@link #pullAudio(short[], int, int)}, into a direct buffer in native byte order,
   * starting at its position (which is not moved).
   */
  public boolean pullAudio(@NonNull ShortBuffer out, int frames) {
    checkDirect(out);
    checkRange(out.remaining(), 0, frames);
    if (!acquire()) {
      for (int i = 0; i < frames * channels; ++i) out.put(out.position() + i, (short) 0);
      return false;
    }
    int r;
    try {
      r = Native.callPullDirect(handle, out, out.position(), frames);
    } finally {
      release();
    }
    return pullResult(r);
  }

  /** {@link #pushAudio(float[], int, int)} from the start of {@code pcm}. */
  public int pushAudio(float @NonNull [] pcm, int frames) {
    return pushAudio(pcm, 0, frames);
  }

  /**
   * {@link #pushAudio(short[], int, int)} for float32 PCM, nominally -1.0 .. 1.0 ({@code
   * parley_call_push_audio_float}). Real-time safe; one capture thread at a time.
   */
  public int pushAudio(float @NonNull [] pcm, int offsetFrames, int frames) {
    checkRange(pcm.length, offsetFrames, frames);
    if (!acquire()) throw closedException();
    int r;
    try {
      r = Native.callPushFloat(handle, pcm, offsetFrames * channels, frames);
    } finally {
      release();
    }
    if (r < 0) throw ParleyException.of(r);
    return r;
  }

  /** {@link #pushAudio(float[], int, int)} from a direct buffer in native byte order. */
  public int pushAudio(@NonNull FloatBuffer pcm, int frames) {
    checkDirect(pcm);
    checkRange(pcm.remaining(), 0, frames);
    if (!acquire()) throw closedException();
    int r;
    try {
      r = Native.callPushFloatDirect(handle, pcm, pcm.position(), frames);
    } finally {
      release();
    }
    if (r < 0) throw ParleyException.of(r);
    return r;
  }

  /** {@link #pullAudio(float[], int, int)} into the start of {@code out}. */
  public boolean pullAudio(float @NonNull [] out, int frames) {
    return pullAudio(out, 0, frames);
  }

  /**
   * {@link #pullAudio(short[], int, int)} for float32 PCM, -1.0 .. 1.0 ({@code
   * parley_call_pull_audio_float}). Real-time safe; one playout thread at a time.
   */
  public boolean pullAudio(float @NonNull [] out, int offsetFrames, int frames) {
    checkRange(out.length, offsetFrames, frames);
    if (!acquire()) {
      java.util.Arrays.fill(out, offsetFrames * channels, (offsetFrames + frames) * channels, 0f);
      return false;
    }
    int r;
    try {
      r = Native.callPullFloat(handle, out, offsetFrames * channels, frames);
    } finally {
      release();
    }
    return pullResult(r);
  }

  /** {@link #pullAudio(float[], int, int)} into a direct buffer in native byte order. */
  public boolean pullAudio(@NonNull FloatBuffer out, int frames) {
    checkDirect(out);
    checkRange(out.remaining(), 0, frames);
    if (!acquire()) {
      for (int i = 0; i < frames * channels; ++i) out.put(out.position() + i, 0f);
      return false;
    }
    int r;
    try {
      r = Native.callPullFloatDirect(handle, out, out.position(), frames);
    } finally {
      release();
    }
    return pullResult(r);
  }

  /**
   * Sends an application datagram (up to {@link Parley#DATAGRAM_MAX} bytes), end-to-end
   * encrypted alongside the voice, unreliable and unordered; the peer gets {@link
   * Context.Listener#onDatagram}.
   *
   * @throws ParleyException CALL_NOT_ACTIVE (not active yet), CALL_ENDED, MESSAGE_TOO_LARGE,
   *     QUEUE_FULL, CLOSED
   */
  public void sendDatagram(byte @NonNull [] data) {
    sendDatagram(data, 0, data.length);
  }

  /** As {@link #sendDatagram(byte[])}, for {@code length} bytes from {@code offset}. */
  public void sendDatagram(byte @NonNull [] data, int offset, int length) {
    if (offset < 0 || length < 0 || offset > data.length - length) {
      throw new IndexOutOfBoundsException("offset " + offset + ", length " + length);
    }
    acquireOrThrow();
    try {
      Native.callSendDatagram(handle, data, offset, length);
    } finally {
      release();
    }
  }

  /**
   * A snapshot of the call's statistics ({@code parley_call_get_stats}).
   *
   * @throws ParleyException CALL_NOT_ACTIVE (not active yet), CALL_ENDED, CLOSED
   */
  public @NonNull CallStats stats() {
    long[] v = new long[CallStats.FIELDS];
    acquireOrThrow();
    try {
      Native.callStats(handle, v);
    } finally {
      release();
    }
    return new CallStats(v);
  }

  /** True once {@link #close()} ran. */
  public boolean isClosed() {
    return closed;
  }

  /**
   * Ends the call if it is still going and frees the native handle ({@code
   * parley_call_destroy}); no listener method names it afterwards. Closing twice is harmless.
   */
  @Override
  public void close() {
    synchronized (closeLock) {
      if (closed) return;
      closed = true;
    }
    context.forget(this);
    release();
  }

  @Override
  public String toString() {
    String p = peer;
    return "Call[" + (incoming ? "from " : "to ") + (p != null ? p : "?") + ", " + state + "]";
  }

  // --- package ---

  long handle() {
    return handle;
  }

  void setState(CallState s) {
    state = s;
  }

  void setPath(Path p) {
    path = p;
  }

  // --- reference counting: lock-free, allocation-free ---

  private boolean acquire() {
    for (;;) {
      int r = refs.get();
      if (r == 0 || closed) return false;
      if (refs.compareAndSet(r, r + 1)) return true;
    }
  }

  private void acquireOrThrow() {
    if (!acquire()) throw closedException();
  }

  private void release() {
    if (refs.decrementAndGet() == 0) Native.callDestroy(handle);
  }

  private static ParleyException closedException() {
    return new ParleyException(
        ParleyException.CLOSED, Native.strerror(ParleyException.CLOSED), "call closed");
  }

  private boolean pullResult(int r) {
    if (r == 0) return true;
    if (r == ParleyException.CALL_ENDED || r == ParleyException.CLOSED) {
      return false;
    }
    throw ParleyException.of(r);
  }

  private void checkRange(int samples, int offsetFrames, int frames) {
    if (offsetFrames < 0
        || frames < 0
        || ((long) offsetFrames + frames) * channels > samples) {
      throw new IndexOutOfBoundsException(
          "frames " + offsetFrames + ".." + ((long) offsetFrames + frames) + " x " + channels
              + " channel(s) exceed " + samples + " samples");
    }
  }

  private static void checkDirect(Buffer b) {
    if (!b.isDirect()) throw new IllegalArgumentException("not a direct buffer");
    ByteOrder order =
        b instanceof ShortBuffer ? ((ShortBuffer) b).order() : ((FloatBuffer) b).order();
    if (order != ByteOrder.nativeOrder()) {
      throw new IllegalArgumentException("buffer is not in native byte order");
    }
  }
}
