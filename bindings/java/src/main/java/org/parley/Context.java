package org.parley;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A parley client: an identity, a connection to a relay, one UDP socket, calls and rooms
 * ({@code parley_context}). Create one per identity, typically for the lifetime of an app
 * process or a foreground service, and {@link #close()} it when done.
 *
 * <h2>Threads</h2>
 *
 * <p>Every method is safe to call from any thread. A context runs its own event loop on one
 * native thread, and <b>every {@link Listener} method is called on that thread</b> (attached
 * to the JVM as a daemon thread named after the context). A listener must not block: it holds
 * up the network of every call of the context. An Android app typically posts from the
 * listener to its main looper ({@code new Handler(Looper.getMainLooper()).post(...)}) and
 * updates its UI there; calling parley methods (accept, hangup, sendDatagram, joinRoom,
 * Room.send, ...) directly from the listener is fine and runs at once. A listener is never
 * re-entered: the events such a call causes (e.g. {@link CallState#ACTIVE} after {@link
 * Call#accept()}) are delivered after the listener returns, in order.
 *
 * <p>{@link #close()} must not be called from the listener: it stops the very thread the
 * listener runs on, so it throws {@link ParleyException} {@link
 * ParleyException#WRONG_THREAD} there, for the listener's whole duration (post the close to
 * another thread).
 *
 * <p>Audio goes through {@link Call#pushAudio} and {@link Call#pullAudio} (16-bit or float32
 * PCM) on the app's own capture and playout threads; see {@link Call}.
 *
 * <p>Events are delivered by libparley's callback mode on the context's own thread: no Java
 * thread waits or polls for them, and {@link #close()} returns once that thread stopped.
 * Every {@link Call} and {@link Room} is attached to its native handle as the handle's user
 * data, so each event names the same object. Nullability: parameters and results are marked
 * {@link NonNull} or {@link Nullable} (the binding's own annotations).
 */
public final class Context implements AutoCloseable {
  /**
   * Receives a context's events. All methods have empty defaults: implement the ones you
   * need.
   *
   * <p><b>Every method runs on the context's own native event thread</b>, never on the
   * thread that created the context or on Android's main thread. Methods must return quickly
   * and must not block (post longer work elsewhere). An exception thrown by a method is
   * printed (like an uncaught exception) and otherwise ignored; it never reaches parley.
   */
  public interface Listener {
    /**
     * The relay connection changed state. {@code error} is why the connection was lost (a
     * {@code PARLEY_ERR_*} code, see {@link ParleyException}) or 0. For {@link
     * RelayState#UNTRUSTED}, {@link #onRelayUntrusted} follows with the relay's fingerprint.
     */
    default void onRelayState(@NonNull RelayState state, int error) {}

    /**
     * A peer calls us. The call is in state {@link CallState#INCOMING}: {@link Call#accept()
     * accept} or {@link Call#reject() reject} it (now or later, from any thread), and {@link
     * Call#close() close} it when done. {@link Call#peerFingerprint()} says who calls.
     */
    default void onIncomingCall(@NonNull Call call) {}

    /**
     * A call changed state. For {@link CallState#ENDED}, {@code error} and {@code text} say
     * why: error 0 is a normal hangup, {@link ParleyException#CALL_REJECTED} a rejection,
     * {@link ParleyException#PEER_UNAVAILABLE} an offline peer, and so on.
     */
    default void onCallState(
        @NonNull Call call, @NonNull CallState state, int error, @NonNull String text) {}

    /**
     * {@link #onCallState(Call, CallState, int, String)} with whose words {@code error} and
     * {@code text} are: only {@link Origin#LOCAL} is parley's own; {@link Origin#RELAY} and
     * {@link Origin#PEER} text is untrusted (show it quoted). This is the method parley calls;
     * the default passes the event on to the one without {@code origin}.
     */
    default void onCallState(
        @NonNull Call call,
        @NonNull CallState state,
        int error,
        @NonNull String text,
        @NonNull Origin origin) {
      onCallState(call, state, error, text);
    }

    /** The call's media moved from one path to another; {@code reason} says why. */
    default void onPathChanged(
        @NonNull Call call, @NonNull Path from, @NonNull Path to, @NonNull String reason) {}

    /**
     * The voice profile we send with changed from {@code fromProfile} to {@code toProfile} (0
     * is the best). {@code timestamp} is the media timestamp (48 kHz units, unsigned 32 bit)
     * from which it applies.
     */
    default void onQualityChanged(
        @NonNull Call call,
        int fromProfile,
        int toProfile,
        @NonNull QualityReason reason,
        long timestamp) {}

    /** An application datagram from the peer ({@link Call#sendDatagram(byte[])}). */
    default void onDatagram(@NonNull Call call, byte @NonNull [] data) {}

    /** An error from the relay that concerns no particular call. */
    default void onError(int error, @NonNull String text) {}

    /**
     * {@link #onError(int, String)} with whose words {@code error} and {@code text} are
     * (relay errors: {@link Origin#RELAY}, untrusted text). This is the method parley calls;
     * the default passes the event on to the one without {@code origin}.
     */
    default void onError(int error, @NonNull String text, @NonNull Origin origin) {
      onError(error, text);
    }

    /**
     * Never called any more: parley no longer trusts a relay on first use (see {@link
     * #onRelayUntrusted} and {@link Context#trustRelay(String)}). Kept so that listeners
     * overriding it still compile.
     */
    default void onRelayTrusted(@Nullable String relayFingerprint) {}

    /**
     * No relay fingerprint was configured: the relay presented the identity {@code
     * relayFingerprint}, and nothing of ours reached it (the handshake stopped before our
     * certificate would have been sent). Right after {@link #onRelayState} with {@link
     * RelayState#UNTRUSTED}. Nothing goes on until the host decides: check the fingerprint
     * (e.g. against one obtained out of band, or ask the user) and call {@link
     * Context#trustRelay(String)} (from here or any thread), or close the context. Store the
     * trusted fingerprint and pass it to {@link Config.Builder#relayFingerprint(String)} from
     * then on.
     */
    default void onRelayUntrusted(@NonNull String relayFingerprint) {}

    /**
     * parley refused an invite from {@code peerFingerprint} without ringing: its media key
     * was forged, stale or replayed ({@code error} is {@link ParleyException#MEDIA_KEY},
     * {@code text} parley's own reason). No {@link Call} exists for it. Whoever sent it learned
     * that this identity is online, which the host may want to know. The default passes it
     * on to {@link #onError(int, String, Origin)}.
     */
    default void onInviteRefused(@NonNull String peerFingerprint, int error, @NonNull String text) {
      onError(error, text, Origin.LOCAL);
    }

    /**
     * A room's membership changed, or our join took effect (the first update of a {@link
     * Room}): it now has {@code memberCount} members, ourselves included, and we send as
     * {@code ownStreamId} (unsigned 32 bit). {@link Room#members()} lists the members as of
     * this update. A refusal of the join (room full, too many rooms) arrives as {@link
     * #onRoomError} instead.
     */
    default void onRoomUpdate(@NonNull Room room, int memberCount, int ownStreamId) {}

    /**
     * The relay refused {@code room}'s join (room full, too many rooms for this client:
     * {@code error} is LIMIT_REACHED): the room counts as left ({@link Room#isLeft()}), close
     * it. {@code text} is the relay's (untrusted). The default passes it on to {@link
     * #onError(int, String, Origin)} with {@link Origin#RELAY}.
     */
    default void onRoomError(@NonNull Room room, int error, @NonNull String text) {
      onError(error, text, Origin.RELAY);
    }

    /**
     * A frame from another member of {@code room}: its fingerprint, its stream, and the
     * sequence number, timestamp (both unsigned 32 bit, as the sender passed them to {@link
     * Room#send}) and payload exactly as sent. <b>parley does not encrypt room frames</b>: the
     * payload is whatever the sender sealed (open it here with the members' shared key); the
     * relay could read and alter an unsealed one, so never trust one unauthenticated.
     */
    default void onRoomFrame(
        @NonNull Room room,
        @NonNull String senderFingerprint,
        int streamId,
        int sequence,
        int timestamp,
        byte @NonNull [] payload) {}

    /**
     * The voice profile the room should send with changed from {@code fromProfile} to {@code
     * toProfile} (0 is the best): the relay judges it from what every member reports. Encode
     * and {@link Room#send send} at {@code toProfile} from the media timestamp {@code
     * timestamp} on (unsigned 32 bit; 0 for a downgrade, which applies at once).
     */
    default void onRoomQualityChanged(
        @NonNull Room room,
        int fromProfile,
        int toProfile,
        @NonNull QualityReason reason,
        long timestamp) {}
  }

  /** The settings of a {@link Context}; build one with {@link Builder}. Immutable. */
  public static final class Config {
    private final String relayAddress;
    private final String relayFingerprint;
    private final String bindAddress;
    private final int sampleRate;
    private final int channels;
    private final int jitterMinMs;
    private final int jitterMaxMs;
    private final boolean includeLoopback;
    private final boolean disableDirect;
    private final QualityMode qualityMode;
    private final int qualityProfile;
    private final String bindAddress6;
    private final int portMin;
    private final int portMax;
    private final int qualityBestProfile;
    private final boolean dtx;
    private final int noPathTimeoutMs;
    private final boolean disableNetworkWatch;
    private final List<String> stunServers;
    private final boolean portMapping;

    private Config(Builder b) {
      relayAddress = b.relayAddress;
      relayFingerprint = b.relayFingerprint;
      bindAddress = b.bindAddress;
      sampleRate = b.sampleRate;
      channels = b.channels;
      jitterMinMs = b.jitterMinMs;
      jitterMaxMs = b.jitterMaxMs;
      includeLoopback = b.includeLoopback;
      disableDirect = b.disableDirect;
      qualityMode = b.qualityMode;
      qualityProfile = b.qualityProfile;
      bindAddress6 = b.bindAddress6;
      portMin = b.portMin;
      portMax = b.portMax;
      qualityBestProfile = b.qualityBestProfile;
      dtx = b.dtx;
      noPathTimeoutMs = b.noPathTimeoutMs;
      disableNetworkWatch = b.disableNetworkWatch;
      stunServers = Collections.unmodifiableList(new ArrayList<>(b.stunServers));
      portMapping = b.portMapping;
    }

    /** A builder; {@link Builder#relayAddress(String)} is required. */
    public static @NonNull Builder builder() {
      return new Builder();
    }

    public @NonNull String relayAddress() {
      return relayAddress;
    }

    /**
     * The pinned relay fingerprint, or null: the context then waits in {@link
     * RelayState#UNTRUSTED} for {@link Context#trustRelay(String)}.
     */
    public @Nullable String relayFingerprint() {
      return relayFingerprint;
    }

    /**
     * The local bind address ({@code "ip:port"} or {@code "[ipv6]:port"}: one socket, of that
     * family), or null: a socket of each family, 0.0.0.0 and [::], any port.
     */
    public @Nullable String bindAddress() {
      return bindAddress;
    }

    /**
     * The IPv6 socket's address ({@code "[ipv6]:port"}) next to an IPv4 (or null) {@link
     * #bindAddress()}, or null (see {@link Builder#bindAddress6(String)}).
     */
    public @Nullable String bindAddress6() {
      return bindAddress6;
    }

    public int sampleRate() {
      return sampleRate;
    }

    public int channels() {
      return channels;
    }

    public int jitterMinMs() {
      return jitterMinMs;
    }

    public int jitterMaxMs() {
      return jitterMaxMs;
    }

    public boolean includeLoopback() {
      return includeLoopback;
    }

    public boolean disableDirect() {
      return disableDirect;
    }

    public @NonNull QualityMode qualityMode() {
      return qualityMode;
    }

    public int qualityProfile() {
      return qualityProfile;
    }

    /** The first port of the range to bind in, or 0 (any port). */
    public int portMin() {
      return portMin;
    }

    /** The last port of the range to bind in, or 0 (any port). */
    public int portMax() {
      return portMax;
    }

    /** The best voice profile this side sends or agrees to (adaptive mode), 0: no cap. */
    public int qualityBestProfile() {
      return qualityBestProfile;
    }

    /** Whether discontinuous transmission is on. */
    public boolean dtx() {
      return dtx;
    }

    /** How long an active call may have no path before it ends, in ms; 0: parley's 30000. */
    public int noPathTimeoutMs() {
      return noPathTimeoutMs;
    }

    /** Whether the network is left unwatched (see {@link Builder#disableNetworkWatch}). */
    public boolean disableNetworkWatch() {
      return disableNetworkWatch;
    }

    /** The STUN servers ({@code "host:port"}), unmodifiable; empty: the relay alone. */
    public @NonNull List<String> stunServers() {
      return stunServers;
    }

    /** Whether the gateway is asked to forward a port (see {@link Builder#portMapping}). */
    public boolean portMapping() {
      return portMapping;
    }

    /**
     * parley_context_config.stun_servers: the entries joined with ",", or null for none. An
     * entry holding a comma would read as two there: {@link ParleyException#INVALID_ARGUMENT}.
     */
    String stunServersField() {
      if (stunServers.isEmpty()) return null;
      for (int i = 0; i < stunServers.size(); i++) {
        if (stunServers.get(i).indexOf(',') >= 0) {
          throw new ParleyException(
              ParleyException.INVALID_ARGUMENT,
              Native.strerror(ParleyException.INVALID_ARGUMENT),
              "stunServers[" + i + "] '" + stunServers.get(i)
                  + "' holds a comma (one host:port per entry)");
        }
      }
      return String.join(",", stunServers);
    }

    /** Builds a {@link Config}. Values are checked by parley when the context is created. */
    public static final class Builder {
      /** The most STUN servers parley takes ({@link #stunServers(String...)}). */
      public static final int STUN_SERVERS_MAX = 8;

      private String relayAddress;
      private String relayFingerprint;
      private String bindAddress;
      private int sampleRate = 48000;
      private int channels = 1;
      private int jitterMinMs;
      private int jitterMaxMs;
      private boolean includeLoopback;
      private boolean disableDirect;
      private QualityMode qualityMode = QualityMode.ADAPTIVE;
      private int qualityProfile;
      private String bindAddress6;
      private int portMin;
      private int portMax;
      private int qualityBestProfile;
      private boolean dtx;
      private int noPathTimeoutMs;
      private boolean disableNetworkWatch;
      private List<String> stunServers = Collections.emptyList();
      private boolean portMapping;

      public Builder() {}

      /** The relay, {@code "ip:port"} or {@code "[ipv6]:port"}. Required. */
      public @NonNull Builder relayAddress(@NonNull String address) {
        this.relayAddress = address;
        return this;
      }

      /**
       * The relay's fingerprint (64 hex) to pin. Null (the default): the context learns the
       * identity the relay presents without sending it anything of ours, reports it ({@link
       * Listener#onRelayUntrusted}) and waits for {@link Context#trustRelay(String)}.
       */
      public @NonNull Builder relayFingerprint(@Nullable String fingerprint) {
        this.relayFingerprint = fingerprint;
        return this;
      }

      /**
       * The local address to bind, {@code "ip:port"} or {@code "[ipv6]:port"}: one socket, of
       * that family. Null (the default): a socket of each family, 0.0.0.0 and [::] on one
       * port where it is free (IPv4 only on a host without IPv6).
       */
      public @NonNull Builder bindAddress(@Nullable String address) {
        this.bindAddress = address;
        return this;
      }

      /**
       * The IPv6 socket's address, {@code "[ipv6]:port"}, next to an IPv4 (or null) {@link
       * #bindAddress(String)}, e.g. a fixed port. Calls offer candidates of both families.
       * Null (the default): {@code "[::]:0"} when bindAddress is null too, else no IPv6
       * socket. Not IPv6, or next to an IPv6 bindAddress: {@link
       * ParleyException#ADDRESS_FAMILY} at create.
       */
      public @NonNull Builder bindAddress6(@Nullable String address) {
        this.bindAddress6 = address;
        return this;
      }

      /**
       * Binds the first free UDP port in {@code first..last} (1..65535) on bindAddress's IP,
       * whose port must then be 0, for firewalls that open only a range; no free port:
       * {@link ParleyException#SOCKET}. (0, 0), the default: any port.
       */
      public @NonNull Builder portRange(int first, int last) {
        this.portMin = first;
        this.portMax = last;
        return this;
      }

      /** PCM rate of push/pull: 8000, 12000, 16000, 24000 or 48000 (the default) Hz. */
      public @NonNull Builder sampleRate(int hz) {
        this.sampleRate = hz;
        return this;
      }

      /** PCM channels of push/pull: 1 (the default) or 2, interleaved. */
      public @NonNull Builder channels(int channels) {
        this.channels = channels;
        return this;
      }

      /** Jitter buffer delay bounds in ms; 0 keeps parley's defaults (20 and 500). */
      public @NonNull Builder jitterBounds(int minMs, int maxMs) {
        this.jitterMinMs = minMs;
        this.jitterMaxMs = maxMs;
        return this;
      }

      /** Offer loopback addresses as direct-path candidates (both parties on one machine). */
      public @NonNull Builder includeLoopback(boolean include) {
        this.includeLoopback = include;
        return this;
      }

      /** Never try a direct path: calls stay on the relay. */
      public @NonNull Builder disableDirect(boolean disable) {
        this.disableDirect = disable;
        return this;
      }

      /** {@link QualityMode#ADAPTIVE} (the default) or {@link QualityMode#FIXED}. */
      public @NonNull Builder qualityMode(@NonNull QualityMode mode) {
        if (mode == null) throw new NullPointerException("mode");
        this.qualityMode = mode;
        return this;
      }

      /** The profile (0 best .. 4) used with {@link QualityMode#FIXED}. */
      public @NonNull Builder qualityProfile(int profile) {
        this.qualityProfile = profile;
        return this;
      }

      /**
       * {@link QualityMode#ADAPTIVE} only: the best voice profile this side ever sends or
       * agrees to (0 .. 4; 0, the default: no cap), e.g. a data-saver setting.
       */
      public @NonNull Builder qualityBestProfile(int profile) {
        this.qualityBestProfile = profile;
        return this;
      }

      /**
       * Discontinuous transmission: silence and mute then cost almost nothing on the wire,
       * but anyone who sees the (encrypted) frames learns when each side speaks and when it is
       * muted. Off (the default): every voice frame of a profile has one size.
       */
      public @NonNull Builder dtx(boolean dtx) {
        this.dtx = dtx;
        return this;
      }

      /**
       * How long an active call may have no path to the peer (the relay unreachable and no
       * direct path) before it ends with {@link ParleyException#NO_PATH}; 0 (the default):
       * 30000. A call on a working direct path outlives any relay outage.
       */
      public @NonNull Builder noPathTimeoutMs(int ms) {
        this.noPathTimeoutMs = ms;
        return this;
      }

      /**
       * Do not watch the network. False (the default): where the OS lets a process watch its
       * interfaces (Linux: rtnetlink; <b>not</b> Android apps), the context notices network
       * changes by itself and acts as on {@link Context#networkChanged()}. Apps that hear from
       * the platform sooner (Android's {@code ConnectivityManager.NetworkCallback}) call
       * networkChanged(); both together are fine.
       */
      public @NonNull Builder disableNetworkWatch(boolean disable) {
        this.disableNetworkWatch = disable;
        return this;
      }

      /**
       * STUN servers asked for this device's public mappings next to the relay, each {@code
       * "host:port"}, {@code "[ipv6]:port"} or {@code "ipv4:port"} (at most {@link
       * #STUN_SERVERS_MAX}; names resolve on the context's thread). Each answer is a
       * server-reflexive candidate of every call, and together they classify the NAT (behind a
       * sequential symmetric NAT calls also offer the ports it hands out next). Calls never
       * wait for them. None (the default): the relay alone. A malformed entry, or more than
       * 8: {@link ParleyException#INVALID_ARGUMENT} at create. Replaces any earlier list.
       *
       * @throws NullPointerException for a null entry
       */
      public @NonNull Builder stunServers(String @Nullable ... servers) {
        return stunServers(servers == null ? null : Arrays.asList(servers));
      }

      /** {@link #stunServers(String...)} from a list (copied); null or empty: none. */
      public @NonNull Builder stunServers(@Nullable List<String> servers) {
        if (servers == null || servers.isEmpty()) {
          this.stunServers = Collections.emptyList();
          return this;
        }
        List<String> copy = new ArrayList<>(servers.size());
        for (int i = 0; i < servers.size(); i++) {
          String s = servers.get(i);
          if (s == null) throw new NullPointerException("stunServers[" + i + "]");
          copy.add(s);
        }
        this.stunServers = copy;
        return this;
      }

      /**
       * Ask the network's gateway to forward a public port to this context's IPv4 socket, by
       * PCP, NAT-PMP or UPnP IGD (whichever answers first): a candidate any peer can reach,
       * whatever the NATs on either side. Renewed while the context lives and deleted when it
       * closes; calls never wait for it beyond its probe (about 1 s). Off (the default), as it
       * opens a port on the user's router: turn it on as an app setting.
       */
      public @NonNull Builder portMapping(boolean enable) {
        this.portMapping = enable;
        return this;
      }

      public @NonNull Config build() {
        if (relayAddress == null) throw new IllegalStateException("relayAddress is required");
        if (sampleRate == 0) sampleRate = 48000;
        if (channels == 0) channels = 1;
        return new Config(this);
      }
    }
  }

  private static final Listener NO_LISTENER = new Listener() {};

  private final Config config;
  private final Listener listener;
  /** The glue state in parley_jni.c (it owns the parley_context); valid until closed. */
  private final long jctx;
  private final String fingerprint;

  private final Object closeLock = new Object();
  private final Object usersLock = new Object();
  private final AtomicInteger users = new AtomicInteger();
  private volatile boolean closing;
  private volatile boolean closed;
  private volatile Thread eventThread;
  private volatile RelayState relayState = RelayState.IDLE;
  private volatile String trustedRelay;

  // Each native call and room handle carries its one Call or Room object as its user data
  // (parley_call_set_user_data through the glue: a JNI global reference), which every event
  // hands back: no map from handle addresses (which a later handle may reuse) to objects.
  // These sets hold the open objects, for close(). Each is guarded by itself, which also
  // serialises attaching an object to a new handle; never held while waiting for the
  // context's thread.
  private final Set<Call> calls = Collections.newSetFromMap(new IdentityHashMap<Call, Boolean>());
  private int startsInFlight;

  private final Set<Room> rooms = Collections.newSetFromMap(new IdentityHashMap<Room, Boolean>());
  // Joins from threads other than this context's own are one at a time (joinLock): while one
  // is in flight, joiningId is its id, so an update that names the new handle before
  // parley_room_join returned to Java (the relay answered first) gets a Room with the right
  // id; such objects wait in `provisional` until the join confirms (or drops) them.
  private final Object joinLock = new Object();
  private String joiningId;
  private final List<Room> provisional = new ArrayList<>();

  private Context(Identity identity, Config config, Listener listener) {
    this.config = config;
    this.listener = listener != null ? listener : NO_LISTENER;
    String stunServers = config.stunServersField(); // may throw: before any native state
    // The glue state first: events may arrive before parley_context_create returns.
    this.jctx = Native.contextAlloc(this);
    try {
      synchronized (identity) {
        Native.contextCreate(
            jctx,
            identity.live(),
            config.relayAddress,
            config.relayFingerprint,
            config.bindAddress,
            config.sampleRate,
            config.channels,
            config.jitterMinMs,
            config.jitterMaxMs,
            config.disableDirect,
            config.includeLoopback,
            config.qualityMode.code(),
            config.qualityProfile,
            config.bindAddress6,
            config.portMin,
            config.portMax,
            config.qualityBestProfile,
            config.dtx,
            config.noPathTimeoutMs,
            config.disableNetworkWatch,
            stunServers,
            config.portMapping);
      }
    } catch (RuntimeException | Error e) {
      Native.contextFree(jctx); // creation failed: no callback ever fires
      throw e;
    }
    this.fingerprint = Native.contextFingerprint(jctx);
  }

  /**
   * Starts a context ({@code parley_context_create}): its thread, its socket and the
   * connection to the relay, whose progress arrives as {@link Listener#onRelayState}. The
   * identity is copied and may be closed afterwards.
   *
   * @param listener receives the events, on the context's thread; null for none
   * @throws ParleyException ADDRESS_INVALID (relay or bind address), ADDRESS_FAMILY (bind
   *     addresses of the wrong family), FINGERPRINT_INVALID, AUDIO_FORMAT, INVALID_ARGUMENT,
   *     SOCKET, ...
   */
  public static @NonNull Context create(
      @NonNull Identity identity, @NonNull Config config, @Nullable Listener listener) {
    if (identity == null) throw new NullPointerException("identity");
    if (config == null) throw new NullPointerException("config");
    return new Context(identity, config, listener);
  }

  /** The settings the context was created with. */
  public @NonNull Config config() {
    return config;
  }

  /** Our own fingerprint: what peers dial. */
  public @NonNull String fingerprint() {
    return fingerprint;
  }

  /**
   * The relay's fingerprint: the configured one ({@link Config#relayFingerprint()}), or the one
   * the host trusted with {@link #trustRelay(String)}; null before either (also while the
   * context waits in {@link RelayState#UNTRUSTED}).
   */
  public @Nullable String relayFingerprint() {
    if (closing) return trustedRelay != null ? trustedRelay : config.relayFingerprint;
    long h = enter();
    try {
      String fp = Native.contextRelayFingerprint(h); // parley_context_relay_fingerprint
      if (fp != null) trustedRelay = fp;
      return fp;
    } finally {
      exit();
    }
  }

  /**
   * The host's trust decision on the relay ({@code parley_context_trust_relay}): pins {@code
   * relayFingerprint} (64 hex; normally the one {@link Listener#onRelayUntrusted} reported,
   * once checked) as the relay's identity, connects and registers; progress arrives as {@link
   * Listener#onRelayState}. A relay presenting another identity is refused ({@link
   * RelayState#BACKOFF} with {@link ParleyException#PEER_IDENTITY}). Also replaces a configured
   * pin. May be called from the listener.
   *
   * @throws ParleyException FINGERPRINT_INVALID (not 64 hex digits), CLOSED
   */
  public void trustRelay(@NonNull String relayFingerprint) {
    if (relayFingerprint == null) throw new NullPointerException("relayFingerprint");
    long h = enter();
    try {
      Native.contextTrustRelay(h, relayFingerprint);
      // parley's normalized spelling, also for relayFingerprint() after close().
      trustedRelay = Native.contextRelayFingerprint(h);
    } finally {
      exit();
    }
  }

  /**
   * Tells the context that the device's network changed ({@code
   * parley_context_network_changed}): an interface came or went, Wi-Fi handed over to cellular,
   * a VPN started. Call it from the platform's network monitor (on Android from {@code
   * ConnectivityManager.NetworkCallback}'s {@code onAvailable}, {@code onLost} and {@code
   * onLinkPropertiesChanged}; on iOS from {@code NWPathMonitor}) whenever the usable networks or
   * their addresses change; extra calls cost a few packets. Returns at once: the context then
   * refreshes its relay registration (reconnecting if the relay does not answer within a
   * second), learns its public addresses again and restarts ICE on every active call, whose
   * audio keeps flowing on whatever path still works (the relay included) until a new direct
   * path is verified. May be called from any thread, the listener included.
   *
   * @throws ParleyException CLOSED
   */
  public void networkChanged() {
    long h = enter();
    try {
      Native.contextNetworkChanged(h);
    } finally {
      exit();
    }
  }

  /** The relay connection's last state reported to the listener. */
  public @NonNull RelayState relayState() {
    return relayState;
  }

  /**
   * Calls a peer through the relay ({@code parley_call_start}). Progress arrives as {@link
   * Listener#onCallState} for the returned call (possibly before this method returns).
   *
   * @param peerFingerprint 64 hex digits (see {@link Parley#normalizeFingerprint(String)})
   * @throws ParleyException FINGERPRINT_INVALID, NOT_REGISTERED (the relay connection is not
   *     up yet), INVALID_ARGUMENT (calling ourselves), CLOSED
   */
  public @NonNull Call call(@NonNull String peerFingerprint) {
    if (peerFingerprint == null) throw new NullPointerException("peerFingerprint");
    long h = enter();
    try {
      synchronized (calls) {
        ++startsInFlight;
      }
      try {
        long ptr = Native.callStart(h, peerFingerprint);
        return callFor(ptr, true, false, null);
      } finally {
        synchronized (calls) {
          --startsInFlight;
        }
      }
    } finally {
      exit();
    }
  }

  /**
   * Joins room {@code roomId} on the relay ({@code parley_room_join}). Membership arrives as
   * {@link Listener#onRoomUpdate} for the returned room (possibly before this method
   * returns); a refusal by the relay (room full, too many rooms) as {@link Listener#onError}.
   * After {@link Room#leave()} the same id may be joined again (a new Room).
   *
   * <p><b>parley does not encrypt room frames</b>: see {@link Room}.
   *
   * @param roomId 32 hex characters, e.g. from {@link Room#generateId()}, shared with the other
   *     members out of band
   * @throws ParleyException INVALID_ARGUMENT (not 32 hex characters, or a room this context is
   *     in), NOT_REGISTERED (the relay connection is not up yet), QUEUE_FULL, CLOSED
   */
  public @NonNull Room joinRoom(@NonNull String roomId) {
    if (roomId == null) throw new NullPointerException("roomId");
    // What parley accepted is 32 hex digits in either case; kept in lowercase.
    String id = roomId.toLowerCase(Locale.ROOT);
    long h = enter();
    try {
      if (Thread.currentThread() == eventThread) {
        // From our own listener: no event of this context is delivered until the listener
        // returns, so the handle is mapped before any event can name it (and joinLock, which
        // another thread may hold while it waits for this very thread, is not needed).
        long ptr = Native.roomJoin(h, roomId);
        synchronized (rooms) {
          return mapJoined(ptr, id);
        }
      }
      synchronized (joinLock) {
        synchronized (rooms) {
          joiningId = id;
        }
        long ptr;
        try {
          ptr = Native.roomJoin(h, roomId);
        } catch (RuntimeException | Error e) {
          synchronized (rooms) {
            joiningId = null;
            dropProvisional(0);
          }
          throw e;
        }
        synchronized (rooms) {
          joiningId = null;
          dropProvisional(ptr);
          return mapJoined(ptr, id);
        }
      }
    } finally {
      exit();
    }
  }

  /** True once {@link #close()} has begun. */
  public boolean isClosed() {
    return closing;
  }

  /**
   * Hangs up every call, leaves every room, disconnects from the relay and stops the
   * context's thread ({@code parley_context_destroy}); no listener method runs once this
   * returns. Then closes every {@link Call} and {@link Room} of the context that is still
   * open. Closing twice is harmless.
   *
   * @throws ParleyException {@link ParleyException#WRONG_THREAD} when called from this
   *     context's own listener (nothing happens then: close it from another thread)
   */
  @Override
  public void close() {
    if (Thread.currentThread() == eventThread) {
      if (closing) return; // another thread is closing it already
      Native.contextDestroy(jctx); // throws PARLEY_ERR_WRONG_THREAD
      return;
    }
    synchronized (closeLock) {
      if (closed) return;
      closing = true;
      // Calls in flight on other threads (and on the listener thread) finish first: the
      // native context must not be freed under them.
      synchronized (usersLock) {
        boolean interrupted = false;
        while (users.get() != 0) {
          try {
            usersLock.wait();
          } catch (InterruptedException e) {
            interrupted = true;
          }
        }
        if (interrupted) Thread.currentThread().interrupt();
      }
      Native.contextDestroy(jctx);
      closed = true;
    }
    List<Call> open;
    synchronized (calls) {
      open = new ArrayList<>(calls);
    }
    for (Call c : open) c.close();
    List<Room> openRooms;
    synchronized (rooms) {
      openRooms = new ArrayList<>(rooms);
    }
    for (Room r : openRooms) r.close();
  }

  // --- handle guard: the native context outlives every method running on it ---

  private long enter() {
    users.incrementAndGet();
    if (closing) {
      exit();
      throw new ParleyException(
          ParleyException.CLOSED, Native.strerror(ParleyException.CLOSED), "context closed");
    }
    return jctx;
  }

  private void exit() {
    if (users.decrementAndGet() == 0 && closing) {
      synchronized (usersLock) {
        usersLock.notifyAll();
      }
    }
  }

  // --- calls: the one Call of each handle is its user data ---

  /**
   * The one Call object for {@code ptr}: the one attached to the handle, else (when {@code
   * create}, while a start is in flight, or for an INCOMING_CALL event) a new one, attached
   * now. An event may come before parley_call_start returned to its caller (no user data
   * yet): whichever of the two gets here first makes the object, the other finds it.
   */
  private @Nullable Call callFor(
      long ptr, boolean create, boolean incomingEvent, @Nullable String peer) {
    synchronized (calls) {
      Object attached = Native.callUserData(ptr);
      if (attached instanceof Call) return (Call) attached;
      if (!(create || startsInFlight > 0 || incomingEvent)) return null;
      Call c = new Call(this, ptr, incomingEvent, peer, config.channels);
      Native.callSetUserData(ptr, c);
      calls.add(c);
      return c;
    }
  }

  void forget(Call call) {
    synchronized (calls) {
      calls.remove(call);
    }
  }

  // --- rooms: the one Room of each handle is its user data ---

  /** Under the rooms lock: the one Room for a handle parley_room_join just returned. */
  private Room mapJoined(long ptr, String id) {
    Object attached = Native.roomUserData(ptr);
    if (attached instanceof Room && !((Room) attached).isClosed()) return (Room) attached;
    Room r = new Room(this, ptr, id);
    Native.roomSetUserData(ptr, r);
    rooms.add(r);
    return r;
  }

  /** Under the rooms lock: objects made for events during a join that named another handle. */
  private void dropProvisional(long joined) {
    for (Room p : provisional) {
      if (p.handle() == joined) continue; // the joined room itself: confirmed
      rooms.remove(p);
      try {
        Native.roomSetUserData(p.handle(), null); // not ours: as it was
      } catch (ParleyException e) {
        // INVALID_HANDLE: gone already.
      }
      p.discard();
    }
    provisional.clear();
  }

  /**
   * The Room an event names ({@code target}: the handle's user data), or null (a handle
   * closed, left, or never ours).
   */
  private @Nullable Room roomForEvent(long ptr, @Nullable Object target) {
    Room r = null;
    if (target instanceof Room) {
      r = (Room) target;
    } else {
      synchronized (rooms) {
        Object attached = Native.roomUserData(ptr);
        if (attached instanceof Room) {
          r = (Room) attached;
        } else if (joiningId != null) {
          // The relay answered a join before parley_room_join returned to its caller.
          r = new Room(this, ptr, joiningId);
          Native.roomSetUserData(ptr, r);
          rooms.add(r);
          provisional.add(r);
        }
      }
    }
    if (r == null || r.isClosed() || r.isLeft()) return null;
    return r;
  }

  void forget(Room room) {
    synchronized (rooms) {
      rooms.remove(room);
    }
  }

  // --- event dispatch, called by parley_jni.c on the context's thread ---

  private static final int EVENT_RELAY_STATE = 1;
  private static final int EVENT_INCOMING_CALL = 2;
  private static final int EVENT_CALL_STATE = 3;
  private static final int EVENT_DATAGRAM = 4;
  private static final int EVENT_PATH_CHANGED = 5;
  private static final int EVENT_ERROR = 6;
  private static final int EVENT_QUALITY_CHANGED = 7;
  /** No longer raised by parley (the host decides: UNTRUSTED and trustRelay). */
  private static final int EVENT_RELAY_TRUSTED = 8;
  private static final int EVENT_ROOM_UPDATE = 9;
  private static final int EVENT_ROOM_FRAME = 10;

  @SuppressWarnings("unused") // called from parley_jni.c
  private void onNativeEvent(
      int type,
      long callPtr,
      int relayStateCode,
      int callState,
      int error,
      int path,
      int pathFrom,
      String peer,
      String text,
      byte[] data,
      int profile,
      int profileFrom,
      int qualityReason,
      int timestamp,
      long roomPtr,
      int streamId,
      int sequence,
      int memberCount,
      int originCode,
      @Nullable Object target) {
    if (eventThread == null) eventThread = Thread.currentThread();
    if (roomPtr != 0) {
      onRoomEvent(type, roomPtr, target, error, peer, text, data, profile, profileFrom,
          qualityReason, timestamp, streamId, sequence, memberCount);
      return;
    }
    Call call = null;
    switch (type) {
      case EVENT_INCOMING_CALL:
      case EVENT_CALL_STATE:
      case EVENT_DATAGRAM:
      case EVENT_PATH_CHANGED:
      case EVENT_QUALITY_CHANGED:
        if (callPtr == 0) return;
        // The call's user data; none only for a new handle (an incoming call, or an event
        // that came before parley_call_start returned): then the handle's, or a new Call.
        call = target instanceof Call
            ? (Call) target
            : callFor(callPtr, false, type == EVENT_INCOMING_CALL, peer);
        // A handle the app closed already: nothing names it any more.
        if (call == null || call.isClosed()) return;
        break;
      default:
        break;
    }
    switch (type) {
      case EVENT_RELAY_STATE:
        {
          RelayState s = RelayState.of(relayStateCode);
          relayState = s;
          listener.onRelayState(s, error);
          if (s == RelayState.UNTRUSTED && peer != null) listener.onRelayUntrusted(peer);
          break;
        }
      case EVENT_INCOMING_CALL:
        if (call != null) listener.onIncomingCall(call);
        break;
      case EVENT_CALL_STATE:
        if (call != null) {
          CallState s = CallState.of(callState);
          call.setState(s);
          listener.onCallState(call, s, error, text, Origin.of(originCode));
        }
        break;
      case EVENT_DATAGRAM:
        if (call != null) listener.onDatagram(call, data != null ? data : new byte[0]);
        break;
      case EVENT_PATH_CHANGED:
        if (call != null) {
          call.setPath(Path.of(path));
          listener.onPathChanged(call, Path.of(pathFrom), Path.of(path), text);
        }
        break;
      case EVENT_ERROR:
        if (peer != null) {
          listener.onInviteRefused(peer, error, text); // a refused invite names its sender
        } else {
          listener.onError(error, text, Origin.of(originCode));
        }
        break;
      case EVENT_QUALITY_CHANGED:
        if (call != null) {
          listener.onQualityChanged(
              call, profileFrom, profile, QualityReason.of(qualityReason),
              timestamp & 0xffffffffL);
        }
        break;
      case EVENT_RELAY_TRUSTED: // from an older library that trusted on first use
        trustedRelay = peer;
        listener.onRelayTrusted(peer);
        break;
      default:
        break; // an event type a newer library added
    }
  }

  /** ROOM_UPDATE, ROOM_FRAME and a room's QUALITY_CHANGED. */
  private void onRoomEvent(
      int type,
      long roomPtr,
      @Nullable Object target,
      int error,
      String peer,
      String text,
      byte[] data,
      int profile,
      int profileFrom,
      int qualityReason,
      int timestamp,
      int streamId,
      int sequence,
      int memberCount) {
    Room room = roomForEvent(roomPtr, target);
    // A room the app closed or left: nothing names it any more.
    if (room == null) return;
    switch (type) {
      case EVENT_ROOM_UPDATE:
        room.setUpdate(memberCount, streamId);
        listener.onRoomUpdate(room, memberCount, streamId);
        break;
      case EVENT_ROOM_FRAME:
        listener.onRoomFrame(
            room, peer != null ? peer : "", streamId, sequence, timestamp,
            data != null ? data : new byte[0]);
        break;
      case EVENT_QUALITY_CHANGED:
        listener.onRoomQualityChanged(
            room, profileFrom, profile, QualityReason.of(qualityReason),
            timestamp & 0xffffffffL);
        break;
      case EVENT_ERROR:
        room.markRefused();
        listener.onRoomError(room, error, text);
        break;
      default:
        break; // a room event type a newer library added
    }
  }

  @Override
  public String toString() {
    return "Context[" + fingerprint + (closing ? ", closed]" : "]");
  }
}
