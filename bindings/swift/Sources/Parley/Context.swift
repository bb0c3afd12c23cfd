import CParley
import Foundation

/// A client context (`parley_context`): an identity, a relay connection, one UDP socket,
/// calls and rooms. Events are queued by libparley (poll mode) and read with ``poll()``,
/// ``next(timeout:)`` or ``waitFor(timeout:_:)``, or from Swift concurrency as the
/// `AsyncSequence` ``events`` (`for try await event in context.events`).
///
/// Thread safety: libparley allows every context function from any thread; this binding
/// serialises pollers (one thread at a time takes an event, so each event is delivered to
/// exactly one poller) and keeps handle creation, release and ``close()`` consistent with the
/// events being read, so `Context` is `Sendable`: e.g. a UI thread may place calls or join
/// rooms while a worker waits for events.
public final class Context: @unchecked Sendable {
    /// The settings of a context (`parley_context_config`).
    public struct Configuration: Sendable {
        /// The relay, "ip:port" or "[ipv6]:port".
        public var relayAddress: String
        /// The relay's fingerprint (64 hex) to pin. nil: the context learns the identity the
        /// relay presents without sending it anything of ours, reports it
        /// (``Event/relayUntrusted(fingerprint:)``) and waits for ``Context/trustRelay(_:)``.
        public var relayFingerprint: String?
        /// Local address to bind, "ip:port" or "[ipv6]:port": one socket, of that family.
        /// nil: a socket of each family, 0.0.0.0 and [::] on one port where it is free (IPv4
        /// only on a host without IPv6).
        public var bindAddress: String?
        /// "[ipv6]:port": the IPv6 socket's address next to an IPv4 (or nil) `bindAddress`,
        /// e.g. a fixed port; calls offer candidates of both families. nil: "[::]:0" when
        /// `bindAddress` is nil too, else no IPv6 socket. Not IPv6, or next to an IPv6
        /// `bindAddress`: `PARLEY_ERR_ADDRESS_FAMILY` (-49).
        public var bindAddress6: String?
        /// Bind the first free UDP port in this range (1...65535) on `bindAddress`'s IP, whose
        /// port must then be 0; for firewalls that open only a range. No free port:
        /// `PARLEY_ERR_SOCKET` (-22). nil: any port.
        public var portRange: ClosedRange<Int>?
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
        /// ``QualityMode/adaptive`` only: the best voice profile this side ever sends or agrees
        /// to (0 ... 4; 0: no cap), e.g. a data-saver setting.
        public var qualityBestProfile: Int = 0
        /// Discontinuous transmission: silence and mute then cost almost nothing on the wire,
        /// but anyone who sees the (encrypted) frames learns when each side speaks and when it
        /// is muted. false: every voice frame of a profile has one size.
        public var dtx = false
        /// How long an active call may have no path to the peer (the relay unreachable and no
        /// direct path) before it ends with `PARLEY_ERR_NO_PATH` (-46); 0: 30000. A call on a
        /// working direct path outlives any relay outage.
        public var noPathTimeoutMs: UInt32 = 0
        /// Do not watch the network. false: where the OS lets a process watch its interfaces
        /// (Linux: rtnetlink; not iOS or macOS), the context notices network changes by itself
        /// and acts as on ``Context/networkChanged()``. Apps that hear from the platform sooner
        /// (`NWPathMonitor`) call networkChanged(); both together are fine.
        public var disableNetworkWatch = false
        /// STUN servers asked for this device's public mappings next to the relay, each
        /// "host:port", "[ipv6]:port" or "ipv4:port" (at most ``stunServersMax``; names resolve
        /// on the context's thread). Each answer is a server-reflexive candidate of every call,
        /// and together they classify the NAT (behind a sequential symmetric NAT calls also
        /// offer the ports it hands out next). Calls never wait for them. Empty: the relay
        /// alone. A malformed entry (one holding a comma included), or more than 8:
        /// `PARLEY_ERR_INVALID_ARGUMENT` (-1).
        public var stunServers: [String] = []
        /// Ask the network's gateway to forward a public port to this context's IPv4 socket,
        /// by PCP, NAT-PMP or UPnP IGD (whichever answers first): a candidate any peer can
        /// reach, whatever the NATs on either side. Renewed while the context lives, deleted
        /// when it closes; calls never wait for it beyond its probe (about 1 s). false: off,
        /// as it opens a port on the user's router: turn it on as an app setting.
        public var portMapping = false

        /// The most STUN servers libparley takes (``stunServers``).
        public static let stunServersMax = 8

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
    private let registry: Registry

    /// Starts a context: its thread, its socket and the connection to the relay (progress
    /// arrives as ``Event/relayState(_:error:)``). The identity is copied.
    /// Throws e.g. `PARLEY_ERR_ADDRESS_INVALID` (-20), `PARLEY_ERR_ADDRESS_FAMILY` (-49),
    /// `PARLEY_ERR_FINGERPRINT_INVALID` (-12) or `PARLEY_ERR_AUDIO_FORMAT` (-42).
    public init(identity: Identity, configuration: Configuration) throws {
        // parley_context_config.stun_servers is one comma-separated string: an entry holding
        // a comma would read as two there.
        if let i = configuration.stunServers.firstIndex(where: { $0.contains(",") }) {
            let entry = configuration.stunServers[i]
            throw ParleyError(code: ParleyError.Code.invalidArgument.rawValue,
                              detail: "stunServers[\(i)] '\(entry)' holds a comma (one host:port per entry)")
        }
        let stunServers = configuration.stunServers.isEmpty
            ? nil : configuration.stunServers.joined(separator: ",")
        var cfg = parley_context_config()
        // parley_context_config_init is a C macro passing the header's sizeof: Swift calls the
        // function behind it with the size of the struct it was compiled with.
        try check(parley_context_config_init_sized(&cfg, MemoryLayout<parley_context_config>.size))
        cfg.sample_rate = Int32(clamping: configuration.sampleRate)
        cfg.channels = Int32(clamping: configuration.channels)
        cfg.jitter_min_ms = configuration.jitterMinMs
        cfg.jitter_max_ms = configuration.jitterMaxMs
        cfg.disable_direct = configuration.disableDirect ? 1 : 0
        cfg.include_loopback = configuration.includeLoopback ? 1 : 0
        cfg.event_callback = nil  // poll mode
        switch configuration.qualityMode {
        case .adaptive:
            cfg.quality_mode = Int32(PARLEY_QUALITY_MODE_ADAPTIVE.rawValue)
        case .fixed(let profile):
            cfg.quality_mode = Int32(PARLEY_QUALITY_MODE_FIXED.rawValue)
            cfg.quality_profile = Int32(clamping: profile)
        }
        if let range = configuration.portRange {
            cfg.port_min = Int32(clamping: range.lowerBound)
            cfg.port_max = Int32(clamping: range.upperBound)
        }
        cfg.quality_best_profile = Int32(clamping: configuration.qualityBestProfile)
        cfg.dtx = configuration.dtx ? 1 : 0
        cfg.no_path_timeout_ms = configuration.noPathTimeoutMs
        cfg.disable_network_watch = configuration.disableNetworkWatch ? 1 : 0
        cfg.port_mapping = configuration.portMapping ? 1 : 0
        var out: OpaquePointer?
        // The C strings live until parley_context_create returned (it copies what it keeps).
        let rc: Int32 = withOptionalCString(configuration.relayFingerprint) { fp in
            withOptionalCString(configuration.bindAddress) { bind in
                withOptionalCString(configuration.bindAddress6) { bind6 in
                    withOptionalCString(stunServers) { stun in
                        configuration.relayAddress.withCString { relay in
                            cfg.relay_address = relay
                            cfg.relay_fingerprint = fp
                            cfg.bind_address = bind
                            cfg.bind_address6 = bind6
                            cfg.stun_servers = stun
                            return parley_context_create(identity.handle, &cfg, &out)
                        }
                    }
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
        registry = Registry(
            context: ctx,
            sampleRate: configuration.sampleRate == 0 ? 48000 : configuration.sampleRate,
            channels: configuration.channels == 0 ? 1 : configuration.channels)
    }

    deinit { registry.close() }

    /// Hangs up every call, closes the relay connection and stops the context's thread.
    /// Queued events are dropped. Idempotent; also done by deinit. ``Call`` and ``Room``
    /// objects stay valid (their calls are ended; room requests throw `PARLEY_ERR_CLOSED`).
    /// A thread waiting in ``next(timeout:)`` is woken at once (`parley_context_wake`) and
    /// gets `PARLEY_ERR_CLOSED`; an ``events`` sequence ends.
    public func close() { registry.close() }

    /// The relay's fingerprint: the configured one, or the one the host trusted with
    /// ``trustRelay(_:)``. Throws `PARLEY_ERR_NOT_REGISTERED` before either (also while the
    /// context waits in ``RelayState/untrusted``), or `PARLEY_ERR_CLOSED`.
    public func relayFingerprint() throws -> String {
        try registry.withContext { ctx in
            try readFingerprint { parley_context_relay_fingerprint(ctx, $0, $1) }
        }
    }

    /// The host's trust decision on the relay (`parley_context_trust_relay`): pins
    /// `relayFingerprint` (64 hex; normally the one ``Event/relayUntrusted(fingerprint:)``
    /// reported, once checked) as the relay's identity, connects and registers; progress
    /// arrives as ``Event/relayState(_:error:)``. A relay presenting another identity is
    /// refused (``RelayState/backoff`` with `PARLEY_ERR_PEER_IDENTITY`). Also replaces a
    /// configured pin. Throws `PARLEY_ERR_FINGERPRINT_INVALID` (-12: not 64 hex digits) or
    /// `PARLEY_ERR_CLOSED`.
    public func trustRelay(_ relayFingerprint: String) throws {
        try registry.withContext { ctx in
            _ = try check(parley_context_trust_relay(ctx, relayFingerprint))
        }
    }

    /// Tells the context that the device's network changed (`parley_context_network_changed`):
    /// an interface came or went, Wi-Fi handed over to cellular, a VPN started. Call it from
    /// the platform's network monitor (on iOS and macOS from `NWPathMonitor`'s
    /// `pathUpdateHandler`; on Android from `ConnectivityManager.NetworkCallback`) whenever the
    /// usable networks or their addresses change; extra calls cost a few packets. Returns at
    /// once: the context then refreshes its relay registration (reconnecting if the relay does
    /// not answer within a second), learns its public addresses again and restarts ICE on
    /// every active call, whose audio keeps flowing on whatever path still works (the relay
    /// included) until a new direct path is verified. Throws `PARLEY_ERR_CLOSED`.
    public func networkChanged() throws {
        try registry.withContext { ctx in
            _ = try check(parley_context_network_changed(ctx))
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

    /// Joins room `id` (32 hex characters, e.g. from ``Room/generateID()``, shared with the
    /// other members out of band). Membership arrives as ``Event/roomUpdate(_:memberCount:ownStream:)``;
    /// a refusal by the relay (room full, too many rooms) as ``Event/error(_:call:)``.
    ///
    /// parley does **not** encrypt room frames end to end: the relay can read what
    /// ``Room/send(_:sequence:timestamp:profile:)`` carries. Seal payloads with a key the
    /// members share before sending (see ``Room``).
    ///
    /// The context keeps the room alive until ``Room/leave()``, ``Room/close()`` or
    /// ``close()``. Throws `PARLEY_ERR_INVALID_ARGUMENT` (-1: not 32 hex characters, or a room
    /// this context is in), `PARLEY_ERR_NOT_REGISTERED` (-36), `PARLEY_ERR_QUEUE_FULL` (-26)
    /// or `PARLEY_ERR_CLOSED` (-14).
    public func join(room id: String) throws -> Room {
        try registry.join(id)
    }

    /// The oldest queued event, or nil when there is none (or the context is closed). Never
    /// waits: while another thread is taking an event (in ``next(timeout:)``) it returns nil,
    /// and that thread gets the event.
    public func poll() -> Event? {
        (try? registry.poll()) ?? nil
    }

    /// The next event, waiting up to `timeout` seconds (`parley_context_wait_event`: an event
    /// is returned as soon as it is queued); nil when none arrived in time. Several threads may
    /// wait at once; each event goes to one of them. Throws `PARLEY_ERR_CLOSED` when the
    /// context is closed. Not from an audio thread.
    public func next(timeout: TimeInterval) throws -> Event? {
        try registry.next(timeout: timeout)
    }

    /// Waits until an event satisfies `predicate` and returns it; events that do not are
    /// dropped (calls and rooms they name stay alive, see ``Call`` and ``Room``). Throws
    /// `PARLEY_ERR_TIMEOUT` (-19) after `timeout` seconds, `PARLEY_ERR_CLOSED`, or what
    /// `predicate` throws.
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


extension Context {
    /// The context's events as an `AsyncSequence`, for Swift concurrency:
    ///
    /// ```swift
    /// for try await event in context.events {
    ///     if case .incomingCall(let call) = event { try call.accept() }
    /// }
    /// ```
    ///
    /// Each iteration has a thread of its own that blocks in `parley_context_wait_event`
    /// (no polling on a timer) and hands each event to the iterating task as soon as it is
    /// queued (buffered without limit if the task is slower). The sequence ends when the
    /// context is closed (``close()``), and throws what a wait throws otherwise. Ending the
    /// iteration (leaving the loop, or cancelling its task) wakes the thread
    /// (`parley_context_wake`), which then returns. Events go to one taker at a time: while
    /// an iteration runs, ``poll()`` returns nil and ``next(timeout:)`` waits for the poll
    /// lock, so take events one way per context.
    public var events: AsyncThrowingStream<Event, Error> {
        let registry = self.registry
        return AsyncThrowingStream { continuation in
            let pump = EventPump(registry: registry, continuation: continuation)
            continuation.onTermination = { _ in pump.stop() }
            let thread = Thread { pump.run() }
            thread.name = "parley-events"
            thread.start()
        }
    }
}

/// The thread behind one iteration of ``Context/events``: waits for events without a
/// timeout and yields them, until stopped (a wake) or the context is closed.
private final class EventPump: @unchecked Sendable {
    private let registry: Registry
    private let continuation: AsyncThrowingStream<Event, Error>.Continuation
    private let lock = NSLock()
    private var stopped = false

    init(registry: Registry, continuation: AsyncThrowingStream<Event, Error>.Continuation) {
        self.registry = registry
        self.continuation = continuation
    }

    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    /// The iteration ended (or its task was cancelled): the thread returns after its wait,
    /// which this cuts short.
    func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
        registry.wake()
    }

    func run() {
        while !isStopped {
            do {
                if let event = try registry.pumpStep(stopped: { isStopped }) {
                    continuation.yield(event)
                }
            } catch let error as ParleyError where error.knownCode == .closed {
                break  // the context was closed: the sequence ends
            } catch {
                continuation.finish(throwing: error)
                return
            }
        }
        continuation.finish()
    }
}
