import CParley
import Foundation

/// One call (`parley_call`). There is exactly one `Call` object per C handle: every event about
/// the call hands out the same object, so `===` and `==` identify calls.
///
/// Lifetime: the owning ``Context`` keeps a call alive until it has reported the call ended
/// (or until the context is closed); after that the call lives as long as you reference it.
/// When the last reference goes away the handle is destroyed (`parley_call_destroy`), which
/// ends the call if it is still going. A `Call` stays usable after its context is closed:
/// requests then fail with `PARLEY_ERR_CLOSED` and ``pull(frames:)`` gives silence.
///
/// Thread safety (libparley's contract): ``accept()``, ``reject()``, ``hangup()``,
/// ``send(datagram:)``, ``stats()`` and ``isMuted`` may be used from any thread, so `Call` is
/// `Sendable`. The audio functions are the real-time exception: **one** capture thread at a
/// time may push and **one** playout thread at a time may pull. The `UnsafeBufferPointer`
/// variants of `push(_:)` and `pull(into:)` never lock, block or allocate; the
/// array variants allocate (their arrays) and suit tests and non-real-time code.
///
/// PCM is 16-bit (`Int16`) or float32 (`Float`, nominally -1.0 ... 1.0, as AVAudioEngine
/// hands it over; values beyond are clipped, NaN is silence): `push(_:)` and `pull(into:)`
/// take either, ``pullFloat(frames:)`` is the float twin of ``pull(frames:)``. Do not mix the
/// two formats on one call at the same time.
public final class Call: @unchecked Sendable, Hashable, CustomStringConvertible {
    let handle: OpaquePointer
    /// The registry's name for this call, attached to the handle as its user data.
    let token: UInt
    private let registry: Registry
    /// The peer's fingerprint (64 lowercase hex).
    public let peer: String
    /// Interleaved channels per frame (the context's format).
    public let channels: Int
    /// The context's sample rate (frames per second).
    public let sampleRate: Int
    /// True for a call we placed, false for an incoming one.
    public let isOutgoing: Bool

    private let muteLock = NSLock()
    private var muted = false
    private var tagValue: (any Sendable)?

    init(handle: OpaquePointer, token: UInt, registry: Registry, peer: String, outgoing: Bool) {
        self.handle = handle
        self.token = token
        self.registry = registry
        self.channels = registry.channels
        self.sampleRate = registry.sampleRate
        self.isOutgoing = outgoing
        let canonical = try? readFingerprint { parley_call_peer(handle, $0, $1) }
        self.peer = canonical ?? peer
    }

    deinit { registry.release(call: handle, token: token) }

    /// The application's own data for this call (e.g. its contact); parley never looks at
    /// it. Every event about the call hands out this same object, tag included.
    public var tag: (any Sendable)? {
        get {
            muteLock.lock()
            defer { muteLock.unlock() }
            return tagValue
        }
        set {
            muteLock.lock()
            defer { muteLock.unlock() }
            tagValue = newValue
        }
    }

    /// Accepts an incoming call. Throws `PARLEY_ERR_WRONG_CALL_STATE` (-53) for an outgoing
    /// call or one already answered.
    public func accept() throws { try check(parley_call_accept(handle)) }
    /// Rejects an incoming call (the caller sees `PARLEY_ERR_CALL_REJECTED`).
    public func reject() throws { try check(parley_call_reject(handle)) }
    /// Ends the call; both sides then get ``CallState/ended`` without an error.
    public func hangup() throws { try check(parley_call_hangup(handle)) }

    /// Mute: while muted the peer hears comfort noise. Real-time safe in libparley (this
    /// property adds a short lock around its stored value).
    public var isMuted: Bool {
        get {
            muteLock.lock()
            defer { muteLock.unlock() }
            return muted
        }
        set {
            muteLock.lock()
            defer { muteLock.unlock() }
            if parley_call_set_muted(handle, newValue ? 1 : 0) == 0 { muted = newValue }
        }
    }

    /// Hands microphone PCM (interleaved `channels` samples per frame, the context's rate) to
    /// the encoder. Returns the number of frames taken (fewer when about 200 ms are already
    /// waiting), or a negative `PARLEY_ERR_*` code (`PARLEY_ERR_CALL_ENDED`, -45, once the
    /// call ended). No error is thrown so that the real-time path never allocates. One
    /// capture thread at a time.
    @discardableResult
    public func push(_ pcm: UnsafeBufferPointer<Int16>) -> Int {
        guard let base = pcm.baseAddress, pcm.count >= channels else { return 0 }
        return Int(parley_call_push_audio(handle, base, pcm.count / channels))
    }

    /// `push(_:)` for an array.
    @discardableResult
    public func push(_ pcm: [Int16]) -> Int {
        pcm.withUnsafeBufferPointer { push($0) }
    }

    /// `push(_:)` for float32 PCM, nominally -1.0 ... 1.0 (`parley_call_push_audio_float`):
    /// the same rules and results. Never locks, blocks or allocates.
    @discardableResult
    public func push(_ pcm: UnsafeBufferPointer<Float>) -> Int {
        guard let base = pcm.baseAddress, pcm.count >= channels else { return 0 }
        return Int(parley_call_push_audio_float(handle, base, pcm.count / channels))
    }

    /// `push(_:)` for an array of float32 samples.
    @discardableResult
    public func push(_ pcm: [Float]) -> Int {
        pcm.withUnsafeBufferPointer { push($0) }
    }

    /// Fills `out` (whole frames: `out.count / channels`) with playout PCM: the peer's voice
    /// through the jitter buffer, concealment where frames are missing, silence before the
    /// call is active and after it ends. Returns 0 or a negative `PARLEY_ERR_*` code (once the
    /// call has ended; `out` then holds silence). Never locks, blocks or allocates. One
    /// playout thread at a time.
    @discardableResult
    public func pull(into out: UnsafeMutableBufferPointer<Int16>) -> Int32 {
        guard let base = out.baseAddress, out.count >= channels else { return 0 }
        return parley_call_pull_audio(handle, base, out.count / channels)
    }

    /// `frames` frames of playout PCM (`frames * channels` samples); silence when the call
    /// is not active.
    public func pull(frames: Int) -> [Int16] {
        var out = [Int16](repeating: 0, count: max(0, frames) * channels)
        out.withUnsafeMutableBufferPointer { _ = pull(into: $0) }
        return out
    }

    /// `pull(into:)` for float32 PCM, -1.0 ... 1.0 (`parley_call_pull_audio_float`): the same
    /// rules and results. Never locks, blocks or allocates.
    @discardableResult
    public func pull(into out: UnsafeMutableBufferPointer<Float>) -> Int32 {
        guard let base = out.baseAddress, out.count >= channels else { return 0 }
        return parley_call_pull_audio_float(handle, base, out.count / channels)
    }

    /// ``pull(frames:)`` as float32 samples.
    public func pullFloat(frames: Int) -> [Float] {
        var out = [Float](repeating: 0, count: max(0, frames) * channels)
        out.withUnsafeMutableBufferPointer { _ = pull(into: $0) }
        return out
    }

    /// The largest application datagram (`PARLEY_DATAGRAM_MAX`).
    public static let maxDatagramSize = Int(PARLEY_DATAGRAM_MAX)

    /// Sends an application datagram end-to-end encrypted alongside the voice: unreliable and
    /// unordered; the peer gets ``Event/datagram(_:_:)``. Throws e.g.
    /// `PARLEY_ERR_CALL_NOT_ACTIVE` (-52: not active yet), `PARLEY_ERR_CALL_ENDED` or
    /// `PARLEY_ERR_MESSAGE_TOO_LARGE`.
    public func send(datagram: [UInt8]) throws {
        try check(datagram.withUnsafeBytes {
            parley_call_send_datagram(handle, $0.baseAddress, $0.count)
        })
    }

    /// The call's statistics; throws `PARLEY_ERR_CALL_NOT_ACTIVE` (-52) when it is not active
    /// yet, `PARLEY_ERR_CALL_ENDED` once it ended.
    public func stats() throws -> CallStats {
        var s = parley_call_stats()
        s.struct_size = MemoryLayout<parley_call_stats>.size
        try check(parley_call_get_stats(handle, &s))
        return CallStats(s)
    }

    public static func == (a: Call, b: Call) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
    public var description: String { "Call(\(isOutgoing ? "to" : "from") \(peer))" }
}
