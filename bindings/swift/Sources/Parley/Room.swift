import CParley
import Foundation

/// One member of a room (`parley_room_member`).
public struct RoomMember: Sendable, Hashable, CustomStringConvertible {
    /// The member's identity (64 lowercase hex).
    public var fingerprint: String
    /// The stream its frames carry (``Event/roomFrame(_:sender:stream:sequence:timestamp:payload:)``'s
    /// `stream`).
    public var streamID: UInt32

    public init(fingerprint: String, streamID: UInt32) {
        self.fingerprint = fingerprint
        self.streamID = streamID
    }

    public var description: String { "\(fingerprint.prefix(8))…/\(streamID)" }
}

/// Membership of a room (`parley_room`), from ``Context/join(room:)``: a group on the relay in
/// which each member sends a frame once and the relay forwards it to every other member.
/// There is exactly one `Room` object per C handle: every event about the room hands out the
/// same object, so `===` and `==` identify rooms (a room joined again after ``leave()`` is a
/// new object).
///
/// **Room frames are not encrypted by parley.** Unlike call audio and call datagrams, which are
/// sealed end to end, a frame's payload goes to the relay and the other members exactly as
/// given to ``send(_:sequence:timestamp:profile:)``: the relay can read it. Seal payloads with
/// a key the members share (e.g. an AEAD key agreed over calls or over the app's own channel)
/// before sending, and open them on ``Event/roomFrame(_:sender:stream:sequence:timestamp:payload:)``.
/// The sender's fingerprint in that event is what the relay announced, not a signature.
///
/// Lifetime: the owning ``Context`` keeps a joined room alive until ``leave()``, ``close()``
/// or the context's close; after that it lives as long as you reference it. Releasing the
/// last reference, or ``close()``, destroys the handle (`parley_room_destroy`: leaving the
/// room if still in it). After its context is closed, requests throw `PARLEY_ERR_CLOSED` and
/// ``members()`` gives the last known members.
///
/// Thread safety: every method may be called from any thread, so `Room` is `Sendable`.
public final class Room: @unchecked Sendable, Hashable, CustomStringConvertible {
    private let handle: OpaquePointer
    /// The registry's name for this room, attached to the handle as its user data.
    let token: UInt
    private let registry: Registry
    /// Guards `released` and every use of `handle` (so close() never frees it under a request).
    private let lock = NSLock()
    private var released = false
    private var tagValue: (any Sendable)?
    /// The room id (32 lowercase hex).
    public let id: String

    init(handle: OpaquePointer, token: UInt, registry: Registry, id: String) {
        self.handle = handle
        self.token = token
        self.registry = registry
        self.id = id
    }

    deinit {
        if !released { registry.release(room: handle, token: token) }
    }

    /// The application's own data for this room; parley never looks at it.
    public var tag: (any Sendable)? {
        get {
            lock.lock()
            defer { lock.unlock() }
            return tagValue
        }
        set {
            lock.lock()
            defer { lock.unlock() }
            tagValue = newValue
        }
    }

    /// The largest payload of ``send(_:sequence:timestamp:profile:)`` (`PARLEY_DATAGRAM_MAX`).
    public static let maxPayloadSize = Int(PARLEY_DATAGRAM_MAX)

    /// A fresh random room id (32 lowercase hex, `parley_room_id_generate`), to share with the
    /// members out of band.
    public static func generateID() -> String {
        var buf = [CChar](repeating: 0, count: Int(PARLEY_ROOM_ID_BUF_LEN))
        let rc = buf.withUnsafeMutableBufferPointer {
            parley_room_id_generate($0.baseAddress, $0.count)
        }
        precondition(rc == 0, "parley_room_id_generate: \(ParleyError.last(rc))")
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Runs `body` with the live handle; throws `PARLEY_ERR_INVALID_HANDLE` (-44) after
    /// ``close()``.
    @discardableResult
    private func withHandle<R>(_ body: (OpaquePointer) throws -> R) throws -> R {
        lock.lock()
        defer { lock.unlock() }
        if released {
            throw ParleyError(code: ParleyError.Code.invalidHandle.rawValue,
                              detail: "the room was closed")
        }
        return try body(handle)
    }

    /// Leaves the room: no frame or update of it arrives afterwards (events already queued
    /// still may). The same id may then be joined again (a new `Room`). Throws
    /// `PARLEY_ERR_NOT_A_MEMBER` (-51) when already left, `PARLEY_ERR_CLOSED` (-14) after
    /// the context's close, `PARLEY_ERR_INVALID_HANDLE` (-44) after ``close()``.
    public func leave() throws {
        try withHandle { try check(parley_room_leave($0)) }
        registry.unkeep(room: token)
    }

    /// Releases the handle now (leaving the room if still in it); no event names the room
    /// afterwards, and every request throws `PARLEY_ERR_INVALID_HANDLE` (-44). Idempotent;
    /// also done when the last reference goes away.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        if released { return }
        released = true
        registry.release(room: handle, token: token)
    }

    /// The members as of the latest ``Event/roomUpdate(_:memberCount:ownStream:)`` (ourselves
    /// included; empty before the first). Throws `PARLEY_ERR_INVALID_HANDLE` after ``close()``.
    public func members() throws -> [RoomMember] {
        try withHandle { h in
            var capacity = 8
            while true {
                var buf = [parley_room_member](repeating: parley_room_member(), count: capacity)
                var count = capacity
                let rc = parley_room_members(h, &buf, &count)
                if rc == ParleyError.Code.bufferTooSmall.rawValue, count > capacity {
                    capacity = count  // it grew since: try again with what it needs now
                    continue
                }
                try check(rc)
                return buf.prefix(count).map { m in
                    let fp = withUnsafeBytes(of: m.fingerprint) { raw in
                        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                    }
                    return RoomMember(fingerprint: fp, streamID: m.stream_id)
                }
            }
        }
    }

    /// Sends one frame to the other members through the relay: unreliable and unordered.
    ///
    /// - `payload`: at most ``maxPayloadSize`` bytes, delivered **as given**: parley does not
    ///   encrypt it and the relay can read it, so seal it first (see ``Room``).
    /// - `sequence`: the host's own frame counter, one more per frame (the relay judges loss
    ///   from the gaps); `timestamp`: the host's media timestamp. Both arrive unchanged.
    /// - `profile`: the voice profile (0 best ... 4) that the room's latest
    ///   ``Event/roomQualityChanged(_:_:)`` named (0 until one arrives).
    ///
    /// Throws `PARLEY_ERR_NOT_A_MEMBER` (-51: not a member yet, or left),
    /// `PARLEY_ERR_MESSAGE_TOO_LARGE` (-25), `PARLEY_ERR_INVALID_ARGUMENT` (-1: profile out of
    /// range), `PARLEY_ERR_QUEUE_FULL` (-26), `PARLEY_ERR_NOT_REGISTERED` (-36) or
    /// `PARLEY_ERR_CLOSED` (-14).
    public func send(_ payload: [UInt8], sequence: UInt32, timestamp: UInt32, profile: Int = 0) throws {
        try withHandle { h in
            try check(payload.withUnsafeBytes {
                parley_room_send(h, sequence, timestamp, Int32(clamping: profile),
                                 $0.baseAddress, $0.count)
            })
        }
    }

    public static func == (a: Room, b: Room) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
    public var description: String { "Room(\(id))" }
}
