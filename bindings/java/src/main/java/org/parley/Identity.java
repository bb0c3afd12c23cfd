package org.parley;

/**
 * An identity: the Ed25519 key pair derived from a 32-byte seed, and its fingerprint (the
 * hex SHA-256 of the public key, which is what peers dial and pin). The secret lives in
 * guarded native memory that is wiped when the identity is closed.
 *
 * <p>Thread-safe. A {@link Context} copies the identity when it is created, so the identity
 * may be closed right afterwards. On Android keep the seed ({@link #exportSeed()}) in the
 * Keystore-backed storage of your choice and recreate the identity with {@link
 * #fromSeed(byte[])}.
 */
public final class Identity implements AutoCloseable {
  private long handle;

  private Identity(long handle) {
    this.handle = handle;
  }

  /** A new identity from the system's CSPRNG ({@code parley_identity_generate}). */
  public static @NonNull Identity generate() {
    return new Identity(Native.identityGenerate());
  }

  /**
   * The identity of a 32-byte seed: the same seed always gives the same keys and fingerprint.
   * The bytes are copied; the caller may wipe its array afterwards.
   *
   * @throws ParleyException INVALID_ARGUMENT when the seed is not {@link Parley#SEED_LENGTH}
   *     bytes
   */
  public static @NonNull Identity fromSeed(byte @NonNull [] seed) {
    if (seed == null) throw new NullPointerException("seed");
    return new Identity(Native.identityFromSeed(seed));
  }

  /**
   * Reads a seed file written by {@link #save(String, boolean)} (mode 0600, owned by this
   * user).
   *
   * @throws ParleyException SEED_FILE_NOT_FOUND, SEED_FILE_PERMISSIONS, SEED_FILE_INVALID, IO
   */
  public static @NonNull Identity load(@NonNull String path) {
    if (path == null) throw new NullPointerException("path");
    return new Identity(Native.identityLoadFile(path));
  }

  /**
   * Writes the seed to {@code path} atomically with mode 0600.
   *
   * @throws ParleyException SEED_FILE_EXISTS (unless {@code overwrite}), IO
   */
  public synchronized void save(@NonNull String path, boolean overwrite) {
    if (path == null) throw new NullPointerException("path");
    Native.identitySaveFile(live(), path, overwrite);
  }

  /** The fingerprint: 64 lowercase hex characters. */
  public synchronized @NonNull String fingerprint() {
    return Native.identityFingerprint(live());
  }

  /** The 32-byte Ed25519 public key. */
  public synchronized byte @NonNull [] publicKey() {
    return Native.identityPublicKey(live());
  }

  /** A copy of the secret 32-byte seed; wipe it (Arrays.fill) when done. */
  public synchronized byte @NonNull [] exportSeed() {
    return Native.identityExportSeed(live());
  }

  /** The identity's deterministic self-signed X.509 certificate, DER. */
  public synchronized byte @NonNull [] certificateDer() {
    return Native.identityCertificate(live());
  }

  /** True once {@link #close()} ran. */
  public synchronized boolean isClosed() {
    return handle == 0;
  }

  /** Wipes and frees the native identity ({@code parley_identity_free}). Idempotent. */
  @Override
  public synchronized void close() {
    if (handle != 0) {
      Native.identityDestroy(handle);
      handle = 0;
    }
  }

  /** The native handle, for Context creation; the caller holds this object's lock. */
  long live() {
    if (handle == 0) {
      throw new ParleyException(
          ParleyException.CLOSED, Native.strerror(ParleyException.CLOSED), "identity closed");
    }
    return handle;
  }
}
