import CParley
import Foundation

/// A client context (`parley_context`): an identity, a relay connection, one UDP socket, and
/// calls. Events are queued by libparley (poll mode) and read with ``poll()``,
/// ``next(timeout:)`` or ``waitFor(timeout:_:)``.
///
/// Thread safety: libparley allows every context function from any thread; this class adds a
/// lock that serialises polling, call creation, call release and ``close()``, so `Context` is
/// `Sendable`: e.g. a UI thread may place calls while a worker polls events. Each event is
/// delivered to exactly one poller.
public final class Context: @unchecked Sendable {
    /// The settings of a context (`parley_context_config`).
    public struct Configuration: Sendable {
        /// The relay, "ip:port" or "[ipv6]:port".
        public var relayAddress: String
        /// The relay's fingerprint (64 hex) to pin; nil trusts the first one seen.
        public var relayFingerprint: String?
        /// Local address to bind, "ip:port"; nil: any address, any port.
        public var bindAddress: String?
        /// PCM format of push/pull: 8000, 12000, 16000, 24000 or 48000 Hz; 1 or 2 channels.
        public var sampleRate: Int = 48000
        public var channels: Int = 1
        /// Jitter buffer delay bounds in ms (0: libparley's defaults, 20 and 500).
        public var jitterMinMs: UInt32 = 0
        public var jitterMaxMs: UInt32 = 0
        /// Offer loopback addresses as host candidates (both parties on one machine).
        public var includeLoopback = false
        /// Never try a direct path (calls stay on the relay).
        public var disableDirect = false
        /// Adaptive (the profile follows the path) or one fixed voice profile.
        public var qualityMode: QualityMode = .adaptive

        public enum QualityMode: Sendable, Hashable {
            case adaptive
            /// Always send with `profile` (0 best ... 4).
            case fixed(profile: Int)
        }

        public init(relayAddress: String, relayFingerprint: String? = nil) {
            self.relayAddress = relayAddress
            self.relayFingerprint = relayFingerprint
        }
    }

    /// Our own fingerprint (the identity's).
    public let fingerprint: String
    public let configuration: Configuration
    private let registry: CallRegistry

    /// Starts a context: its thread, its socket and the connection to the relay (progress
    /// arrives as ``Event/relayState(_:error:)``). The identity is copied.
    /// Throws e.g. `PARLEY_ERR_ADDRESS_INVALID` (-20), `PARLEY_ERR_FINGERPRINT_INVALID` (-12)
    /// or `PARLEY_ERR_AUDIO_FORMAT` (-42).
    public init(identity: Identity, configuration: Configuration) throws {
        var cfg = parley_context_config()
        try check(parley_context_config_init(&cfg))
        cfg.sample_rate = Int32(clamping: configuration.sampleRate)
        cfg.channels = Int32(clamping: configuration.channels)
        cfg.jitter_min_ms = configuration.jitterMinMs
        cfg.jitter_max_ms = configuration.jitterMaxMs
        cfg.disable_direct = configuration.disableDirect ? 1 : 0
        cfg.include_loopback = configuration.includeLoopback ? 1 : 0
        cfg.event_callback = nil  // poll mode
        switch configuration.qualityMode {
        case .adaptive:
            cfg.quality_mode = PARLEY_QUALITY_ADAPTIVE
        case .fixed(let profile):
            cfg.quality_mode = PARLEY_QUALITY_FIXED
            cfg.quality_profile = Int32(clamping: profile)
        }
        var out: OpaquePointer?
        let rc: Int32 = withOptionalCString(configuration.relayFingerprint) { fp in
            withOptionalCString(configuration.bindAddress) { bind in
                configuration.relayAddress.withCString { relay in
                    cfg.relay_address = relay
                    cfg.relay_fingerprint = fp
                    cfg.bind_address = bind
                    return parley_context_create(identity.handle, &cfg, &out)
                }
            }
        }
        try check(rc)
        guard let ctx = out else { throw ParleyError(code: -3, detail: "no context returned") }
        do {
            fingerprint = try readFingerprint { parley_context_fingerprint(ctx, $0, $1) }
        } catch {
            parley_context_destroy(ctx)
            throw error
        }
        self.configuration = configuration
        registry = CallRegistry(
            context: ctx,
            sampleRate: configuration.sampleRate == 0 ? 48000 : configuration.sampleRate,
            channels: configuration.channels == 0 ? 1 : configuration.channels)
    }

    deinit { registry.close() }

    /// Hangs up every call, closes the relay connection and stops the context's thread.
    /// Queued events are dropped. Idempotent; also done by deinit. ``Call`` objects stay
    /// valid (their calls are ended).
    public func close() { registry.close() }

    /// The relay's fingerprint: the pinned one, or the one trusted on first use. Throws
    /// `PARLEY_ERR_NOT_REGISTERED` when none is pinned and none was seen yet, or
    /// `PARLEY_ERR_CLOSED`.
    public func relayFingerprint() throws -> String {
        try registry.withContext { ctx in
            try readFingerprint { parley_context_relay_fingerprint(ctx, $0, $1) }
        }
    }

    /// True once ``close()`` ran.
    public var isClosed: Bool { registry.isClosed }

    /// Calls `peerFingerprint` (64 hex) through the relay; progress arrives as
    /// ``Event/callState(_:_:error:text:)``. Throws `PARLEY_ERR_FINGERPRINT_INVALID` (-12),
    /// `PARLEY_ERR_NOT_REGISTERED` (-36, the relay connection is not up) or
    /// `PARLEY_ERR_CLOSED`.
    public func call(_ peerFingerprint: String) throws -> Call {
        try registry.start(peerFingerprint)
    }

    /// The oldest queued event, or nil when there is none (or the context is closed).
    /// Never blocks.
    public func poll() -> Event? {
        (try? registry.poll()) ?? nil
    }

    /// The next event, waiting up to `timeout` seconds; nil when none arrived in time.
    /// Polls with a short back-off (1 to 10 ms), so an event is seen at most ~10 ms late.
    /// Throws `PARLEY_ERR_CLOSED` when the context is closed.
    public func next(timeout: TimeInterval) throws -> Event? {
        let deadline = Monotonic.now + timeout
        var pause = 0.001
        while true {
            if let event = try registry.poll() { return event }
            let left = deadline - Monotonic.now
            if left <= 0 { return nil }
            Thread.sleep(forTimeInterval: min(pause, left))
            pause = min(pause * 2, 0.010)
        }
    }

    /// Polls until an event satisfies `predicate` and returns it; events that do not are
    /// dropped (calls they name stay alive, see ``Call``). Throws `PARLEY_ERR_TIMEOUT` (-19)
    /// after `timeout` seconds, `PARLEY_ERR_CLOSED`, or what `predicate` throws.
    @discardableResult
    public func waitFor(timeout: TimeInterval, _ predicate: (Event) throws -> Bool) throws -> Event {
        let deadline = Monotonic.now + timeout
        while true {
            let left = deadline - Monotonic.now
            if left > 0, let event = try next(timeout: left) {
                if try predicate(event) { return event }
                continue
            }
            throw ParleyError(code: ParleyError.Code.timeout.rawValue,
                              detail: "no matching event within \(timeout) s")
        }
    }
}

/// Monotonic seconds.
enum Monotonic {
    static var now: TimeInterval { ProcessInfo.processInfo.systemUptime }
}

func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
    guard let s else { return try body(nil) }
    return try s.withCString { try body($0) }
}

/// A context's handle and its calls, shared by the ``Context`` and every ``Call`` (calls
/// outlive their context). One lock serialises polling, call creation, call release and
/// destruction, so that a handle is never released while an event naming it is being turned
/// into a ``Call``, and a freed address reused by a new call is never mistaken for the old one.
final class CallRegistry: @unchecked Sendable {
    private struct Entry {
        /// The one Swift object of this handle (weak: it releases the handle in deinit).
        weak var call: Call?
        /// A strong reference while the call is going (until its ENDED event, or close).
        var keep: Call?
    }

    let sampleRate: Int
    let channels: Int
    private let lock = NSLock()
    private var context: OpaquePointer?
    private var entries: [OpaquePointer: Entry] = [:]

    init(context: OpaquePointer, sampleRate: Int, channels: Int) {
        self.context = context
        self.sampleRate = sampleRate
        self.channels = channels
    }

    var isClosed: Bool {
        lock.lock()
        defer { lock.unlock() }
        return context == nil
    }

    func close() {
        var dropped: [Call] = []
        lock.lock()
        if let ctx = context {
            context = nil
            _ = parley_context_destroy(ctx)
            for (key, entry) in entries {
                if let c = entry.keep { dropped.append(c) }
                entries[key]?.keep = nil
            }
        }
        lock.unlock()
        dropped.removeAll()  // may run Call deinits, which take the lock
    }

    /// Runs `body` with the live context handle (lock held); throws `PARLEY_ERR_CLOSED`.
    func withContext<R>(_ body: (OpaquePointer) throws -> R) throws -> R {
        lock.lock()
        defer { lock.unlock() }
        guard let ctx = context else {
            throw ParleyError(code: ParleyError.Code.closed.rawValue, detail: "the context is closed")
        }
        return try body(ctx)
    }

    func start(_ peer: String) throws -> Call {
        lock.lock()
        defer { lock.unlock() }
        guard let ctx = context else {
            throw ParleyError(code: ParleyError.Code.closed.rawValue, detail: "the context is closed")
        }
        var out: OpaquePointer?
        try check(parley_call_start(ctx, peer, &out))
        let call = Call(handle: out!, registry: self, peer: peer, outgoing: true)
        entries[out!] = Entry(call: call, keep: call)
        return call
    }

    /// Called by `Call.deinit` (never with the lock held by this thread: strong references
    /// are only dropped after unlocking).
    func release(_ handle: OpaquePointer) {
        lock.lock()
        entries.removeValue(forKey: handle)
        parley_call_release(handle)
        lock.unlock()
    }

    /// The next event, nil when none is queued. Throws `PARLEY_ERR_CLOSED` once closed.
    func poll() throws -> Event? {
        var dropped: Call?
        defer { dropped = nil }  // after unlock (defers run in reverse order)
        lock.lock()
        defer { lock.unlock() }
        guard let ctx = context else {
            throw ParleyError(code: ParleyError.Code.closed.rawValue, detail: "the context is closed")
        }
        while true {
            var ev = parley_event()
            let rc = parley_context_poll_event_v2(ctx, &ev, MemoryLayout<parley_event>.size)
            if rc < 0 { throw ParleyError.last(rc) }
            if rc == 0 { return nil }
            if let event = convert(ev, dropping: &dropped) { return event }
            // The event named a call that is being or was released: nothing to report.
        }
    }

    /// Turns a polled C event into an ``Event`` (lock held). Returns nil for an event about a
    /// released call.
    private func convert(_ ev: parley_event, dropping dropped: inout Call?) -> Event? {
        let text = ev.text.map { String(cString: $0) } ?? ""
        let peer = withUnsafeBytes(of: ev.peer) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let error: ParleyError? = ev.error == 0 ? nil : ParleyError(code: ev.error, detail: text)

        var call: Call?
        if let handle = ev.call {
            if let entry = entries[handle] {
                guard let c = entry.call else { return nil }  // its deinit is waiting for the lock
                call = c
            } else if ev.type == Int32(PARLEY_EVENT_INCOMING_CALL.rawValue) {
                let c = Call(handle: handle, registry: self, peer: peer, outgoing: false)
                entries[handle] = Entry(call: c, keep: c)
                call = c
            } else {
                return nil  // not a handle this context handed out
            }
        }

        switch ev.type {
        case Int32(PARLEY_EVENT_RELAY_STATE.rawValue):
            return .relayState(RelayState(rawValue: ev.relay_state), error: error)
        case Int32(PARLEY_EVENT_INCOMING_CALL.rawValue):
            guard let call else { return nil }
            return .incomingCall(call)
        case Int32(PARLEY_EVENT_CALL_STATE.rawValue):
            guard let call else { return nil }
            let state = CallState(rawValue: ev.call_state)
            if state == .ended, let handle = ev.call {
                dropped = entries[handle]?.keep
                entries[handle]?.keep = nil
            }
            return .callState(call, state, error: error, text: text)
        case Int32(PARLEY_EVENT_DATAGRAM.rawValue):
            guard let call else { return nil }
            let bytes = ev.data.map { Array(UnsafeBufferPointer(start: $0, count: ev.len)) } ?? []
            return .datagram(call, bytes)
        case Int32(PARLEY_EVENT_PATH_CHANGED.rawValue):
            guard let call else { return nil }
            return .pathChanged(call, from: Path(rawValue: ev.path_from), to: Path(rawValue: ev.path),
                                reason: text)
        case Int32(PARLEY_EVENT_QUALITY_CHANGED.rawValue):
            guard let call else { return nil }
            return .qualityChanged(call, QualityChange(
                from: Int(ev.profile_from), to: Int(ev.profile),
                reason: QualityReason(rawValue: ev.quality_reason), name: text,
                timestamp: ev.timestamp))
        case Int32(PARLEY_EVENT_RELAY_TRUSTED.rawValue):
            return .relayTrusted(fingerprint: peer)
        case Int32(PARLEY_EVENT_ERROR.rawValue):
            return .error(error ?? ParleyError(code: ParleyError.Code.internal.rawValue, detail: text),
                          call: call)
        default:
            return .other(type: ev.type, call: call)
        }
    }
}
