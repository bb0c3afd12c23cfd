import CParley

/// A parley identity: the Ed25519 key pair derived from a 32-byte seed, its fingerprint and
/// its self-signed certificate (`parley_identity`).
///
/// Thread safety: an identity is immutable after creation and libparley allows sharing it
/// between threads, so `Identity` is `Sendable`. It is freed (wiped) when the last reference
/// goes away, which by construction cannot race with another use.
public final class Identity: @unchecked Sendable {
    let handle: OpaquePointer

    /// The fingerprint: 64 lowercase hex characters (SHA-256 of the public key).
    public let fingerprint: String

    private init(owning handle: OpaquePointer) throws {
        do {
            fingerprint = try readFingerprint { parley_identity_fingerprint(handle, $0, $1) }
        } catch {
            parley_identity_destroy(handle)
            throw error
        }
        self.handle = handle
    }

    deinit { parley_identity_destroy(handle) }

    /// A new identity from the system's CSPRNG.
    public static func generate() throws -> Identity {
        var out: OpaquePointer?
        try check(parley_identity_generate(&out))
        return try Identity(owning: out!)
    }

    /// The identity of `seed` (exactly 32 bytes), e.g. one kept in the platform key store.
    /// The same seed always gives the same keys and fingerprint.
    public convenience init(seed: [UInt8]) throws {
        var out: OpaquePointer?
        try check(seed.withUnsafeBufferPointer {
            parley_identity_from_seed($0.baseAddress, $0.count, &out)
        })
        try self.init(owning: out!)
    }

    /// Loads a seed file written by ``save(to:overwrite:)`` (mode 0600, 32 bytes).
    public convenience init(contentsOfFile path: String) throws {
        var out: OpaquePointer?
        try check(parley_identity_load_file(path, &out))
        try self.init(owning: out!)
    }

    /// Writes the seed to `path` atomically with mode 0600. Without `overwrite` an existing
    /// file is left alone and `PARLEY_ERR_SEED_FILE_EXISTS` is thrown.
    public func save(to path: String, overwrite: Bool = false) throws {
        try check(parley_identity_save_file(handle, path, overwrite ? PARLEY_SAVE_OVERWRITE : 0))
    }

    /// The 32-byte Ed25519 public key.
    public var publicKey: [UInt8] {
        var key = [UInt8](repeating: 0, count: Int(PARLEY_PUBLIC_KEY_LEN))
        _ = key.withUnsafeMutableBufferPointer { parley_identity_public_key(handle, $0.baseAddress) }
        return key
    }

    /// A copy of the secret 32-byte seed (for a platform key store). Wipe it when done.
    public func exportSeed() -> [UInt8] {
        var seed = [UInt8](repeating: 0, count: Int(PARLEY_SEED_LEN))
        _ = seed.withUnsafeMutableBufferPointer { parley_identity_export_seed(handle, $0.baseAddress) }
        return seed
    }

    /// The deterministic self-signed X.509 certificate (DER).
    public func certificateDER() throws -> [UInt8] {
        var len = 0
        let rc = parley_identity_certificate_der(handle, nil, &len)
        if rc < 0 && rc != Int32(PARLEY_ERR_BUFFER_TOO_SMALL.rawValue) { throw ParleyError.last(rc) }
        var der = [UInt8](repeating: 0, count: len)
        try check(der.withUnsafeMutableBufferPointer {
            parley_identity_certificate_der(handle, $0.baseAddress, &len)
        })
        return Array(der.prefix(len))
    }
}

/// Fingerprint helpers.
public enum Fingerprint {
    /// The canonical form (64 lowercase hex) of a fingerprint a human may have copied with
    /// spaces, ':' or '-' and in either case. Throws `PARLEY_ERR_FINGERPRINT_INVALID`.
    public static func normalize(_ text: String) throws -> String {
        try readFingerprint { parley_fingerprint_normalize(text, $0, $1) }
    }

    /// The fingerprint of the Ed25519 key in a DER X.509 certificate.
    public static func of(certificateDER der: [UInt8]) throws -> String {
        try readFingerprint { out, len in
            der.withUnsafeBufferPointer { parley_certificate_fingerprint($0.baseAddress, $0.count, out, len) }
        }
    }
}
