package org.parley;

/**
 * One member of a {@link Room} ({@code parley_room_member}), as {@link Room#members()} lists
 * them: who it is and the stream its frames carry. Immutable; equal when both fields are.
 */
public final class RoomMember {
  private final String fingerprint;
  private final int streamId;

  // Called by parley_jni.c (by name: keep it from R8/ProGuard renaming).
  RoomMember(String fingerprint, int streamId) {
    if (fingerprint == null) throw new NullPointerException("fingerprint");
    this.fingerprint = fingerprint;
    this.streamId = streamId;
  }

  /** The member's identity: its fingerprint (64 lowercase hex). */
  public @NonNull String fingerprint() {
    return fingerprint;
  }

  /**
   * The stream its frames carry: {@code streamId} of {@link Context.Listener#onRoomFrame}
   * (and, for ourselves, {@link Room#ownStreamId()}). Unsigned 32 bit ({@link
   * Integer#toUnsignedLong(int)}).
   */
  public int streamId() {
    return streamId;
  }

  @Override
  public boolean equals(Object o) {
    if (this == o) return true;
    if (!(o instanceof RoomMember)) return false;
    RoomMember m = (RoomMember) o;
    return streamId == m.streamId && fingerprint.equals(m.fingerprint);
  }

  @Override
  public int hashCode() {
    return 31 * fingerprint.hashCode() + streamId;
  }

  @Override
  public String toString() {
    return "RoomMember[" + fingerprint + ", stream " + Integer.toUnsignedString(streamId) + "]";
  }
}
