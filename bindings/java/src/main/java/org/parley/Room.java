package org.parley;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Membership of one room on the relay ({@code parley_room}): a group in which each member
 * sends frames once and the relay forwards them to every other member. Joined with {@link
 * Context#joinRoom(String)}; the room id (32 hex characters, from {@link #generateId()}) is
 * shared with the other members out of band. Membership changes arrive as {@link
 * Context.Listener#onRoomUpdate}, frames as {@link Context.Listener#onRoomFrame}, and the voice
 * profile the relay wants the room to send with as {@link
 * Context.Listener#onRoomQualityChanged}.
 *
 * <p><b>parley does not encrypt room frames.</b> Unlike a {@link Call}'s audio and datagrams,
 * which are sealed end to end, a room payload travels exactly as given to {@link #send}: the
 * relay (and anyone who can read the relay) can read it. Seal every payload yourself with a
 * key the members share (e.g. libsodium's {@code crypto_secretbox}, or AES-GCM from {@code
 * javax.crypto}, with a key agreed over calls or your own channel) before sending, and open it
 * in {@link Context.Listener#onRoomFrame}. parley neither encodes nor decodes room audio
 * either: payloads are the host's own (e.g. sealed Opus packets).
 *
 * <p>There is exactly one Room object per native room handle: the one {@link
 * Context#joinRoom(String)} returned is the one every listener event names, so they compare
 * with {@code ==}. {@link #leave()} leaves the room (the object stays usable for {@link
 * #members()}, and the id may be joined again with a new {@link Context#joinRoom(String)});
 * {@link #close()} leaves it if still in it and frees the handle; closing the {@link Context}
 * closes its rooms too.
 *
 * <p>Every method may be called from any thread, including the context's listener. {@link
 * #send} waits for the context's thread (briefly): it is not real-time safe, so call it from
 * an encoder or network thread, not from inside an audio device callback.
 */
public final class Room implements AutoCloseable {
  private final Context context;
  private final long handle;
  private final String id;
  private volatile int memberCount;
  private volatile int ownStreamId;
  private volatile boolean left;
  private volatile @Nullable Object tag;

  // 1 for the owner (dropped by close) + 1 per method running on the handle; the handle is
  // released when it reaches 0.
  private final AtomicInteger refs = new AtomicInteger(1);
  private volatile boolean closed;
  private final Object closeLock = new Object();

  Room(Context context, long handle, String id) {
    this.context = context;
    this.handle = handle;
    this.id = id;
  }

  /**
   * A fresh random room id: 32 lowercase hex characters ({@code parley_room_id_generate}).
   * Share it with the other members out of band.
   */
  public static @NonNull String generateId() {
    return Native.roomIdGenerate();
  }

  /** The context that joined the room. */
  public @NonNull Context context() {
    return context;
  }

  /** The application's own data for this room, or null; parley never looks at it. */
  public @Nullable Object tag() {
    return tag;
  }

  /** Attaches the application's own data (null: none). */
  public void setTag(@Nullable Object tag) {
    this.tag = tag;
  }

  /** The room id (32 lowercase hex). */
  public @NonNull String id() {
    return id;
  }

  /**
   * The number of members, ourselves included, as of the last {@link
   * Context.Listener#onRoomUpdate} (0 before the first).
   */
  public int memberCount() {
    return memberCount;
  }

  /**
   * Our own stream in the room as of the last {@link Context.Listener#onRoomUpdate} (0 before
   * the first); the other members see our frames with this {@code streamId}. Unsigned 32 bit.
   */
  public int ownStreamId() {
    return ownStreamId;
  }

  /** True once {@link #leave()} succeeded. */
  public boolean isLeft() {
    return left;
  }

  /**
   * Leaves the room ({@code parley_room_leave}); the other members see an {@link
   * Context.Listener#onRoomUpdate} without us. No listener method names this room afterwards
   * (when called from another thread, an event being delivered at that moment may still
   * arrive). The object stays valid for {@link #members()} until {@link #close() closed}; the
   * same id may be joined again with {@link Context#joinRoom(String)} (a new Room).
   *
   * @throws ParleyException NOT_A_MEMBER (already left), CLOSED (the room or its context
   *     was closed)
   */
  public void leave() {
    acquireOrThrow();
    try {
      Native.roomLeave(handle);
      left = true;
    } finally {
      release();
    }
  }

  /**
   * The room's members, ourselves included, as of the latest {@link
   * Context.Listener#onRoomUpdate} ({@code parley_room_members}); inside that listener, as of
   * the update it reports. Empty before the first update. After {@link #leave()} (or once the
   * context is closed) the last known members.
   *
   * @return an unmodifiable list in the relay's order
   * @throws ParleyException CLOSED once the room was closed
   */
  public @NonNull List<RoomMember> members() {
    RoomMember[] m;
    acquireOrThrow();
    try {
      m = Native.roomMembers(handle);
    } finally {
      release();
    }
    return Collections.unmodifiableList(Arrays.asList(m));
  }

  /**
   * {@link #send(byte[], int, int, int, int, int)} of the whole array.
   */
  public void send(byte @NonNull [] payload, int sequence, int timestamp, int profile) {
    send(payload, 0, payload.length, sequence, timestamp, profile);
  }

  /**
   * Sends one frame to the other members through the relay ({@code parley_room_send}):
   * {@code length} bytes of {@code payload} from {@code offset}, at most {@link
   * Parley#DATAGRAM_MAX}. Unreliable and unordered; each other member gets {@link
   * Context.Listener#onRoomFrame} with the payload exactly as given, this {@code sequence}
   * and {@code timestamp}, our fingerprint and {@link #ownStreamId()}. We do not receive our
   * own frames.
   *
   * <p><b>Not encrypted by parley:</b> seal the payload first (see {@link Room}).
   *
   * @param sequence the host's own frame counter, unsigned 32 bit: one more per frame (the
   *     relay judges loss from the gaps)
   * @param timestamp the host's media timestamp, unsigned 32 bit (e.g. 48 kHz units)
   * @param profile the voice profile 0 (best) .. 4 the frame was encoded at: the one {@link
   *     Context.Listener#onRoomQualityChanged} last named for this room (before the first such
   *     event a room starts at parley's default profile, 1 in this version)
   * @throws ParleyException NOT_A_MEMBER (no update received yet, or left),
   *     MESSAGE_TOO_LARGE, INVALID_ARGUMENT (profile outside 0..4), QUEUE_FULL, NOT_REGISTERED,
   *     CLOSED
   * @throws IndexOutOfBoundsException when the range exceeds the array
   */
  public void send(
      byte @NonNull [] payload, int offset, int length, int sequence, int timestamp, int profile) {
    if (offset < 0 || length < 0 || offset > payload.length - length) {
      throw new IndexOutOfBoundsException("offset " + offset + ", length " + length);
    }
    acquireOrThrow();
    try {
      Native.roomSend(handle, payload, offset, length, sequence, timestamp, profile);
    } finally {
      release();
    }
  }

  /** True once {@link #close()} ran (or the context was closed). */
  public boolean isClosed() {
    return closed;
  }

  /**
   * Leaves the room if still in it and frees the native handle ({@code parley_room_destroy});
   * no listener method names it afterwards. Closing twice is harmless.
   */
  @Override
  public void close() {
    synchronized (closeLock) {
      if (closed) return;
      closed = true;
    }
    release();
  }

  @Override
  public @NonNull String toString() {
    return "Room[" + id + ", " + memberCount + " member(s)"
        + (closed ? ", closed]" : left ? ", left]" : "]");
  }

  // --- package ---

  long handle() {
    return handle;
  }

  /** From the context's thread: a room update for this room. */
  /** The relay refused the join: the native handle counts as left. */
  void markRefused() {
    left = true;
  }

  void setUpdate(int members, int stream) {
    memberCount = members;
    ownStreamId = stream;
  }

  /**
   * Drops an object the context made for an event that turned out not to name a room it
   * joined: it is closed without releasing a handle that is not ours.
   */
  void discard() {
    synchronized (closeLock) {
      closed = true;
    }
  }

  // --- reference counting, as in Call ---

  private boolean acquire() {
    for (;;) {
      int r = refs.get();
      if (r == 0 || closed) return false;
      if (refs.compareAndSet(r, r + 1)) return true;
    }
  }

  private void acquireOrThrow() {
    if (!acquire()) {
      throw new ParleyException(
          ParleyException.CLOSED, Native.strerror(ParleyException.CLOSED), "room closed");
    }
  }

  private void release() {
    if (refs.decrementAndGet() == 0) {
      Native.roomDestroy(handle);
      // After the release: until here an event naming the handle finds this closed object
      // (and is dropped) rather than nothing.
      context.forget(this);
    }
  }
}
