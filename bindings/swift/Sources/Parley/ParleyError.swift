import CParley

/// An error from libparley: a negative `PARLEY_ERR_*` code, its C name and a message.
///
/// `message` is the code's fixed description (`parley_strerror`) followed by the detailed
/// message parley recorded for the failing call on the calling thread
/// (`parley_last_error_message`), e.g. "invalid fingerprint: parley_context_create:
/// config.relay_fingerprint is not 64 hex digits". Errors reported in events carry the event's
/// text as the detail instead.
///
/// Two errors compare equal when their codes are equal; compare `code` with the constants in
/// ``ParleyError/Code`` (`err.code == ParleyError.Code.fingerprintInvalid.rawValue`) or use
/// ``ParleyError/knownCode``.
public struct ParleyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The negative `PARLEY_ERR_*` number (stable ABI: never renumbered or reused).
    public let code: Int32
    /// The C enumerator's name, e.g. "PARLEY_ERR_FINGERPRINT_INVALID" (`parley_error_name`,
    /// so a code newer than this binding is named too).
    public let name: String
    /// `parley_strerror(code)`, then ": " and the detail when there is one.
    public let message: String

    /// An error with `code`; `detail` (if not empty) is appended to the fixed description.
    public init(code: Int32, detail: String = "") {
        self.code = code
        self.name = ParleyError.name(of: code)
        let description = String(cString: parley_strerror(code))
        self.message = detail.isEmpty ? description : "\(description): \(detail)"
    }

    /// The error a parley function just returned on this thread, with its detailed message.
    /// Must be called right after the failing call, before any other parley call on the
    /// same thread.
    static func last(_ code: Int32) -> ParleyError {
        // Copy the thread-local message first: any parley call may overwrite it.
        let detail = String(cString: parley_last_error_message())
        return ParleyError(code: code, detail: detail)
    }

    public var description: String { "\(name) (\(code)): \(message)" }

    public static func == (a: ParleyError, b: ParleyError) -> Bool { a.code == b.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// The code as a ``Code``, or nil for a code newer than this binding.
    public var knownCode: Code? { Code(rawValue: code) }

    /// Error codes known to this binding; the numbers are libparley's ABI.
    public enum Code: Int32, Sendable, CaseIterable {
        case invalidArgument = -1
        case noMemory = -2
        case `internal` = -3
        case bufferTooSmall = -4
        case io = -5
        case seedFileNotFound = -6
        case seedFileInvalid = -7
        case seedFilePermissions = -8
        case seedFileExists = -9
        case certMalformed = -10
        case certKeyType = -11
        case fingerprintInvalid = -12
        case crypto = -13
        case closed = -14
        case stunMalformed = -15
        case stunUnknownAttribute = -16
        case stunIntegrity = -17
        case stunFingerprint = -18
        case timeout = -19
        case addressInvalid = -20
        case candidateInvalid = -21
        case socket = -22
        case peerIdentity = -23
        case transport = -24
        case messageTooLarge = -25
        case queueFull = -26
        case signalMalformed = -27
        case signalUnknownType = -28
        case signalVersion = -29
        case mediaMalformed = -30
        case peerUnavailable = -31
        case callNotFound = -32
        case rateLimited = -33
        case limitReached = -34
        case callRejected = -35
        case notRegistered = -36
        case mediaAuth = -37
        case mediaReplay = -38
        case mediaKey = -39
        case iceFailed = -40
        case codec = -41
        case audioFormat = -42
        case wrongThread = -43
        case invalidHandle = -44
        case callEnded = -45
        case noPath = -46
        case nameNotFound = -47
        case noUsableAddress = -48
        case addressFamily = -49
        case allAddressesFailed = -50
        /// Room send/leave when not a member (before 0.2.0: -32, `callNotFound`).
        case notAMember = -51
        /// send(datagram:)/stats() before the call is active (before 0.2.0: -32).
        case callNotActive = -52
        /// accept()/reject() of an outgoing call or one already answered (before 0.2.0: -32).
        case wrongCallState = -53

        /// The C enumerator's name, e.g. "PARLEY_ERR_FINGERPRINT_INVALID".
        public var cName: String { ParleyError.cNames[Int(-rawValue)] }
    }

    /// Index i: the name of code -i.
    fileprivate static let cNames: [String] = [
        "PARLEY_OK",
        "PARLEY_ERR_INVALID_ARGUMENT", "PARLEY_ERR_NO_MEMORY", "PARLEY_ERR_INTERNAL",
        "PARLEY_ERR_BUFFER_TOO_SMALL", "PARLEY_ERR_IO", "PARLEY_ERR_SEED_FILE_NOT_FOUND",
        "PARLEY_ERR_SEED_FILE_INVALID", "PARLEY_ERR_SEED_FILE_PERMISSIONS",
        "PARLEY_ERR_SEED_FILE_EXISTS", "PARLEY_ERR_CERT_MALFORMED", "PARLEY_ERR_CERT_KEY_TYPE",
        "PARLEY_ERR_FINGERPRINT_INVALID", "PARLEY_ERR_CRYPTO", "PARLEY_ERR_CLOSED",
        "PARLEY_ERR_STUN_MALFORMED", "PARLEY_ERR_STUN_UNKNOWN_ATTRIBUTE",
        "PARLEY_ERR_STUN_INTEGRITY", "PARLEY_ERR_STUN_FINGERPRINT", "PARLEY_ERR_TIMEOUT",
        "PARLEY_ERR_ADDRESS_INVALID", "PARLEY_ERR_CANDIDATE_INVALID", "PARLEY_ERR_SOCKET",
        "PARLEY_ERR_PEER_IDENTITY", "PARLEY_ERR_TRANSPORT", "PARLEY_ERR_MESSAGE_TOO_LARGE",
        "PARLEY_ERR_QUEUE_FULL", "PARLEY_ERR_SIGNAL_MALFORMED", "PARLEY_ERR_SIGNAL_UNKNOWN_TYPE",
        "PARLEY_ERR_SIGNAL_VERSION", "PARLEY_ERR_MEDIA_MALFORMED", "PARLEY_ERR_PEER_UNAVAILABLE",
        "PARLEY_ERR_CALL_NOT_FOUND", "PARLEY_ERR_RATE_LIMITED", "PARLEY_ERR_LIMIT_REACHED",
        "PARLEY_ERR_CALL_REJECTED", "PARLEY_ERR_NOT_REGISTERED", "PARLEY_ERR_MEDIA_AUTH",
        "PARLEY_ERR_MEDIA_REPLAY", "PARLEY_ERR_MEDIA_KEY", "PARLEY_ERR_ICE_FAILED",
        "PARLEY_ERR_CODEC", "PARLEY_ERR_AUDIO_FORMAT", "PARLEY_ERR_WRONG_THREAD",
        "PARLEY_ERR_INVALID_HANDLE", "PARLEY_ERR_CALL_ENDED", "PARLEY_ERR_NO_PATH",
        "PARLEY_ERR_NAME_NOT_FOUND", "PARLEY_ERR_NO_USABLE_ADDRESS", "PARLEY_ERR_ADDRESS_FAMILY",
        "PARLEY_ERR_ALL_ADDRESSES_FAILED", "PARLEY_ERR_NOT_A_MEMBER", "PARLEY_ERR_CALL_NOT_ACTIVE",
        "PARLEY_ERR_WRONG_CALL_STATE",
    ]

    /// The C name of `code` as the linked library spells it (`parley_error_name`); a code
    /// neither it nor this binding knows reads "PARLEY_ERR_<number>".
    public static func name(of code: Int32) -> String {
        let name = String(cString: parley_error_name(code))
        if name.hasPrefix("PARLEY_") { return name }
        if code <= 0, Int(-Int64(code)) < cNames.count { return cNames[Int(-code)] }
        return "PARLEY_ERR_\(code)"
    }
}

/// Throws the calling thread's last parley error when `rc` is negative; returns `rc`.
@discardableResult
@inline(__always)
func check(_ rc: Int32) throws -> Int32 {
    if rc < 0 { throw ParleyError.last(rc) }
    return rc
}

/// Reads a fingerprint (64 hex + NUL) that `fill` writes into a buffer.
func readFingerprint(_ fill: (UnsafeMutablePointer<CChar>, Int) -> Int32) throws -> String {
    var buf = [CChar](repeating: 0, count: Int(PARLEY_FINGERPRINT_BUF_LEN))
    let rc = buf.withUnsafeMutableBufferPointer { fill($0.baseAddress!, $0.count) }
    try check(rc)
    return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
