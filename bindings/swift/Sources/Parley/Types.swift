import CParley

// Swift mirrors of parley's C enums. libparley only ever appends values, so each enum has an
// `unknown` case for a number newer than this binding: a newer library never traps an older
// binding.

/// The relay connection's state (`parley_relay_state`).
public enum RelayState: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    case idle, connecting
    /// Calls can be placed and received.
    case registered
    /// Reconnecting after a delay.
    case backoff
    /// The same identity registered elsewhere; not retried.
    case replaced
    /// No relay fingerprint was configured: the relay presented an identity
    /// (``Event/relayUntrusted(fingerprint:)``) and nothing of ours reached it. Nothing goes on
    /// until the host decides: ``Context/trustRelay(_:)``, or close the context.
    case untrusted
    case unknown(Int32)

    public init(rawValue: Int32) {
        switch rawValue {
        case 0: self = .idle
        case 1: self = .connecting
        case 2: self = .registered
        case 3: self = .backoff
        case 4: self = .replaced
        case 5: self = .untrusted
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .idle: return 0
        case .connecting: return 1
        case .registered: return 2
        case .backoff: return 3
        case .replaced: return 4
        case .untrusted: return 5
        case .unknown(let v): return v
        }
    }

    public var description: String {
        switch self {
        case .idle: return "idle"
        case .connecting: return "connecting"
        case .registered: return "registered"
        case .backoff: return "backoff"
        case .replaced: return "replaced"
        case .untrusted: return "untrusted"
        case .unknown(let v): return "relay-state(\(v))"
        }
    }
}

/// Whose words an event's error and text are (`parley_origin`). Only ``local`` is parley's
/// own: show ``relay`` and ``peer`` text as quoted, untrusted text.
public enum Origin: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// This library.
    case local
    /// The relay's signaling.
    case relay
    /// The peer's signaling, carried by the relay unauthenticated (so the relay could have
    /// written it too).
    case peer
    case unknown(Int32)

    public init(rawValue: Int32) {
        switch rawValue {
        case 0: self = .local
        case 1: self = .relay
        case 2: self = .peer
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .local: return 0
        case .relay: return 1
        case .peer: return 2
        case .unknown(let v): return v
        }
    }

    public var description: String {
        switch self {
        case .local: return "local"
        case .relay: return "relay"
        case .peer: return "peer"
        case .unknown(let v): return "origin(\(v))"
        }
    }
}

/// A call's state (`parley_call_state`).
public enum CallState: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// Invite sent, nothing heard yet.
    case inviting
    /// The callee's device is ringing.
    case ringing
    /// A call to us: accept or reject it.
    case incoming
    /// Audio flows.
    case active
    /// Terminal.
    case ended
    case unknown(Int32)

    public init(rawValue: Int32) {
        switch rawValue {
        case 1: self = .inviting
        case 2: self = .ringing
        case 3: self = .incoming
        case 4: self = .active
        case 5: self = .ended
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .inviting: return 1
        case .ringing: return 2
        case .incoming: return 3
        case .active: return 4
        case .ended: return 5
        case .unknown(let v): return v
        }
    }

    public var description: String {
        switch self {
        case .inviting: return "inviting"
        case .ringing: return "ringing"
        case .incoming: return "incoming"
        case .active: return "active"
        case .ended: return "ended"
        case .unknown(let v): return "call-state(\(v))"
        }
    }
}

/// The path a call's media takes (`parley_path`).
public enum Path: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// Through the relay (which cannot read or forge the audio).
    case relay
    /// Peer to peer, identity-pinned QUIC.
    case direct
    case unknown(Int32)

    public init(rawValue: Int32) {
        switch rawValue {
        case 0: self = .relay
        case 1: self = .direct
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .relay: return 0
        case .direct: return 1
        case .unknown(let v): return v
        }
    }

    public var description: String {
        switch self {
        case .relay: return "relay"
        case .direct: return "direct"
        case .unknown(let v): return "path(\(v))"
        }
    }
}

/// Why the voice profile changed (`parley_quality_reason`).
public enum QualityReason: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// Packet loss above what the profile tolerates.
    case loss
    /// A standing queue on the path: it carries less than sent.
    case congestion
    /// Arrival jitter above the profile's limit.
    case jitter
    /// An upgrade: conditions were good long enough.
    case recovered
    /// The peer or the relay (the judge) said so.
    case directive
    case unknown(Int32)

    public init(rawValue: Int32) {
        switch rawValue {
        case 1: self = .loss
        case 2: self = .congestion
        case 3: self = .jitter
        case 4: self = .recovered
        case 5: self = .directive
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .loss: return 1
        case .congestion: return 2
        case .jitter: return 3
        case .recovered: return 4
        case .directive: return 5
        case .unknown(let v): return v
        }
    }

    public var description: String {
        switch self {
        case .loss: return "loss"
        case .congestion: return "congestion"
        case .jitter: return "jitter"
        case .recovered: return "recovered"
        case .directive: return "directive"
        case .unknown(let v): return "quality-reason(\(v))"
        }
    }
}

/// A change of the voice profile we send with, in a call or a room
/// (`PARLEY_EVENT_QUALITY_CHANGED`).
public struct QualityChange: Sendable, Hashable {
    /// Voice profile ids, 0 = best.
    public var from: Int
    public var to: Int
    public var reason: QualityReason
    /// The new profile's name.
    public var name: String
    /// The media timestamp (ours, 48 kHz units) from which it applies.
    public var timestamp: UInt32
}

/// A call's statistics (`parley_call_stats`).
public struct CallStats: Sendable, Hashable {
    /// The path in use.
    public var path: Path
    /// Round-trip time of the path in use.
    public var rttMs: UInt32
    public var pathChanges: UInt64
    /// From active to the first switch to direct; nil: never.
    public var timeToDirectMs: Int64?
    public var framesSent: UInt64
    public var framesReceived: UInt64
    /// Of the peer's frames, last second (what we report to it).
    public var lossPermille: UInt32
    /// Of our frames, as the peer reports.
    public var peerLossPermille: UInt32
    /// The voice profile we send with (0 = best).
    public var profile: Int
    /// The loss (percent) our encoder protects against.
    public var fecLossHint: Int
    /// Opus bytes sent, for a bitrate from two readings.
    public var audioBytesSent: UInt64
    /// The jitter buffer's current delay and its target.
    public var jitterDelayMs: UInt32
    public var jitterTargetMs: UInt32
    /// Received voice frames played.
    public var framesDecoded: UInt64
    /// Lost frames rebuilt from Opus FEC, and from redundant copies.
    public var fecRecovered: UInt64
    public var redRecovered: UInt64
    /// Frames of loss concealment.
    public var concealed: UInt64
    /// Frames that arrived after their time.
    public var late: UInt64
    public var muted: Bool
    /// The longest run of consecutive concealment so far.
    public var longestGapMs: UInt32
    /// Profile changes so far.
    public var qualityChanges: UInt64
    /// The last change's reason; nil before any.
    public var qualityReason: QualityReason?
    /// Loss of the peer's frames over the last second.
    public var qualityLossPermille: UInt32
    /// Direct-path attempts so far: the first ICE run and every restart (a retry, a network
    /// change, the peer's); 0 with `disableDirect`.
    public var directAttempts: UInt32
    /// Why the last direct attempt failed, or why the direct path was lost (e.g.
    /// ``ParleyError/Code/iceFailed``, ``ParleyError/Code/timeout``,
    /// ``ParleyError/Code/peerIdentity``); nil while the call is direct or no attempt has
    /// ended yet.
    public var directError: ParleyError?
    /// Verified direct paths that died (closed, or silent until media fell back).
    public var directLost: UInt32

    init(_ s: parley_call_stats) {
        path = Path(rawValue: s.path)
        rttMs = s.rtt_ms
        pathChanges = s.path_changes
        timeToDirectMs = s.time_to_direct_ms < 0 ? nil : s.time_to_direct_ms
        framesSent = s.frames_sent
        framesReceived = s.frames_received
        lossPermille = s.loss_permille
        peerLossPermille = s.peer_loss_permille
        profile = Int(s.profile)
        fecLossHint = Int(s.fec_loss_hint)
        audioBytesSent = s.audio_bytes_sent
        jitterDelayMs = s.jitter_delay_ms
        jitterTargetMs = s.jitter_target_ms
        framesDecoded = s.frames_decoded
        fecRecovered = s.fec_recovered
        redRecovered = s.red_recovered
        concealed = s.concealed
        late = s.late
        muted = s.muted != 0
        longestGapMs = s.longest_gap_ms
        qualityChanges = s.quality_changes
        qualityReason = s.quality_reason == 0 ? nil : QualityReason(rawValue: s.quality_reason)
        qualityLossPermille = s.quality_loss_permille
        directAttempts = s.direct_attempts
        directError = s.direct_error == 0 ? nil : ParleyError(code: s.direct_error)
        directLost = s.direct_lost
    }
}
