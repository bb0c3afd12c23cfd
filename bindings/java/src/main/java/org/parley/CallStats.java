package org.parley;

/** A snapshot of a call's statistics ({@code parley_call_stats}). Immutable. */
public final class CallStats {
  /** How many values parley_jni.c writes (the order of the fields below). */
  static final int FIELDS = 26;

  /** The path in use. */
  public final Path path;
  /** Round-trip time of the path in use, ms. */
  public final long rttMs;
  public final long pathChanges;
  /** From active to the first switch to direct, ms; -1: never. */
  public final long timeToDirectMs;
  public final long framesSent;
  public final long framesReceived;
  /** Loss of the peer's frames over the last second (what we report to it), per mille. */
  public final long lossPermille;
  /** Loss of our frames, as the peer reports, per mille. */
  public final long peerLossPermille;
  /** The voice profile we send with (0 best). */
  public final int profile;
  /** The loss (percent) our encoder protects against. */
  public final int fecLossHint;
  /** Opus bytes sent, for a bitrate from two readings. */
  public final long audioBytesSent;
  public final long jitterDelayMs;
  public final long jitterTargetMs;
  /** Received voice frames played. */
  public final long framesDecoded;
  public final long fecRecovered;
  public final long redRecovered;
  /** Frames of loss concealment. */
  public final long concealed;
  public final long late;
  public final boolean muted;
  /** The longest run of consecutive concealment so far, ms. */
  public final long longestGapMs;
  public final long qualityChanges;
  /** The last profile change's reason; {@link QualityReason#NONE} before any. */
  public final QualityReason qualityReason;
  /** Loss of the peer's frames over the last second, per mille. */
  public final long qualityLossPermille;
  /** Direct-path attempts so far: the first ICE run and every restart; 0 with disableDirect. */
  public final long directAttempts;
  /**
   * Why the last direct attempt failed, or why the direct path was lost: a {@link
   * ParleyException} code (e.g. {@link ParleyException#ICE_FAILED}, {@link
   * ParleyException#TIMEOUT}, {@link ParleyException#PEER_IDENTITY}); 0 while the call is
   * direct or no attempt has ended yet.
   */
  public final int directError;
  /** Verified direct paths that died (closed, or silent until media fell back). */
  public final long directLost;

  CallStats(long[] v) {
    path = Path.of((int) v[0]);
    rttMs = v[1];
    pathChanges = v[2];
    timeToDirectMs = v[3];
    framesSent = v[4];
    framesReceived = v[5];
    lossPermille = v[6];
    peerLossPermille = v[7];
    profile = (int) v[8];
    fecLossHint = (int) v[9];
    audioBytesSent = v[10];
    jitterDelayMs = v[11];
    jitterTargetMs = v[12];
    framesDecoded = v[13];
    fecRecovered = v[14];
    redRecovered = v[15];
    concealed = v[16];
    late = v[17];
    muted = v[18] != 0;
    longestGapMs = v[19];
    qualityChanges = v[20];
    qualityReason = QualityReason.of((int) v[21]);
    qualityLossPermille = v[22];
    directAttempts = v[23];
    directError = (int) v[24];
    directLost = v[25];
  }

  @Override
  public String toString() {
    return "CallStats[path=" + path + ", rtt=" + rttMs + "ms, sent=" + framesSent
        + ", received=" + framesReceived + ", decoded=" + framesDecoded + ", loss="
        + lossPermille + "/1000, peerLoss=" + peerLossPermille + "/1000, profile=" + profile
        + ", jitter=" + jitterDelayMs + "/" + jitterTargetMs + "ms, concealed=" + concealed
        + ", late=" + late + ", pathChanges=" + pathChanges + ", directAttempts=" + directAttempts
        + ", directError=" + directError + ", directLost=" + directLost + ", muted=" + muted
        + "]";
  }
}
