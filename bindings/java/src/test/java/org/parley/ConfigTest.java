package org.parley;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;
import static org.junit.Assume.assumeTrue;

import java.net.DatagramSocket;
import java.net.Inet6Address;
import java.net.InetSocketAddress;
import java.net.SocketException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * The context options appended to parley_context_config (bindAddress6, noPathTimeoutMs, dtx,
 * portRange, qualityBestProfile, disableNetworkWatch, stunServers, portMapping): each reaches
 * the library, shown by what only it explains. portMapping is never turned on here (it would
 * ask this machine's real gateway for a port). Every wait is on an event with a deadline.
 */
public class ConfigTest {
  /** Far below the default (30 s): a call that ends within the wait was ended by it. */
  private static final int NO_PATH_MS = 500;

  /** A STUN server nobody answers on: calls never wait for STUN answers. */
  private static final String DEAD_STUN = "127.0.0.1:3478";

  private static RelayProcess relay;

  @BeforeClass
  public static void startRelay() throws Exception {
    relay = RelayProcess.start();
  }

  @AfterClass
  public static void stopRelay() throws Exception {
    if (relay != null) relay.close();
  }

  private static boolean hasIpv6Loopback() {
    try (DatagramSocket s = new DatagramSocket(new InetSocketAddress("::1", 0))) {
      return s.getLocalAddress() instanceof Inet6Address;
    } catch (SocketException e) {
      return false;
    }
  }

  private static ParleyException expect(int code, Runnable r) {
    try {
      r.run();
    } catch (ParleyException e) {
      assertEquals(e.toString(), code, e.code());
      assertEquals(ParleyException.nameOf(code), e.errorName());
      return e;
    }
    fail("expected " + ParleyException.nameOf(code));
    return null;
  }

  @Test
  public void builderKeepsEveryField() {
    Context.Config c =
        Context.Config.builder()
            .relayAddress("127.0.0.1:9")
            .bindAddress("127.0.0.1:0")
            .bindAddress6("[::1]:0")
            .portRange(40000, 40010)
            .qualityBestProfile(2)
            .dtx(true)
            .noPathTimeoutMs(1234)
            .disableNetworkWatch(true)
            .stunServers(DEAD_STUN, "localhost:3478")
            .portMapping(true) // only built, never created
            .build();
    assertEquals("[::1]:0", c.bindAddress6());
    assertEquals(40000, c.portMin());
    assertEquals(40010, c.portMax());
    assertEquals(2, c.qualityBestProfile());
    assertTrue(c.dtx());
    assertEquals(1234, c.noPathTimeoutMs());
    assertTrue(c.disableNetworkWatch());
    assertEquals(Arrays.asList(DEAD_STUN, "localhost:3478"), c.stunServers());
    assertEquals(DEAD_STUN + ",localhost:3478", c.stunServersField());
    assertTrue(c.portMapping());
    try {
      c.stunServers().add("x:1");
      fail("stunServers() is modifiable");
    } catch (UnsupportedOperationException expected) {
      // immutable
    }
    Context.Config d = Context.Config.builder().relayAddress("127.0.0.1:9").build();
    assertNull(d.bindAddress6());
    assertEquals(0, d.portMin());
    assertEquals(0, d.portMax());
    assertEquals(0, d.qualityBestProfile());
    assertFalse(d.dtx());
    assertEquals(0, d.noPathTimeoutMs());
    assertFalse(d.disableNetworkWatch());
    assertEquals(Collections.emptyList(), d.stunServers());
    assertNull(d.stunServersField());
    assertFalse(d.portMapping());
    // A List is copied; null and empty clear the list.
    List<String> list = new ArrayList<>(Collections.singletonList(DEAD_STUN));
    Context.Config.Builder b = Context.Config.builder().relayAddress("127.0.0.1:9")
        .stunServers(list);
    list.add("localhost:3478");
    assertEquals(Collections.singletonList(DEAD_STUN), b.build().stunServers());
    assertEquals(Collections.emptyList(), b.stunServers((List<String>) null).build().stunServers());
    assertEquals(Collections.emptyList(), b.stunServers().build().stunServers());
    try {
      b.stunServers(DEAD_STUN, null);
      fail("a null entry was taken");
    } catch (NullPointerException expected) {
      assertTrue(String.valueOf(expected.getMessage()).contains("stunServers[1]"));
    }
  }

  @Test(timeout = 20_000)
  public void stunServersReachTheLibrary() throws Exception {
    try (Identity id = Identity.generate()) {
      Context.Config.Builder base = Context.Config.builder().relayAddress("127.0.0.1:9")
          .portMapping(false).disableNetworkWatch(true);
      try (Context c = Context.create(id, base.stunServers(DEAD_STUN).build(), null)) {
        assertEquals(Collections.singletonList(DEAD_STUN), c.config().stunServers());
        assertFalse(c.config().portMapping());
        assertTrue(c.config().disableNetworkWatch());
      }
      List<String> eight = new ArrayList<>();
      for (int i = 1; i <= Context.Config.Builder.STUN_SERVERS_MAX; i++) {
        eight.add("127.0.0." + i + ":3478");
      }
      try (Context c = Context.create(id, base.stunServers(eight).build(), null)) {
        assertEquals(8, c.config().stunServers().size());
      }

      ParleyException e = expect(ParleyException.INVALID_ARGUMENT,
          () -> Context.create(id, base.stunServers("not a host:port").build(), null));
      assertTrue(e.detail(), e.detail().contains("STUN server"));
      List<String> nine = new ArrayList<>(eight);
      nine.add("127.0.0.9:3478");
      e = expect(ParleyException.INVALID_ARGUMENT,
          () -> Context.create(id, base.stunServers(nine).build(), null));
      assertTrue(e.detail(), e.detail().contains("at most 8"));
      // An entry holding a comma would read as two in the C field: refused by the binding.
      e = expect(ParleyException.INVALID_ARGUMENT,
          () -> Context.create(id, base.stunServers(DEAD_STUN + "," + DEAD_STUN).build(), null));
      assertTrue(e.detail(), e.detail().contains("stunServers[0]"));
    }
  }

  /** A STUN server that never answers costs nothing: both register and a call goes active. */
  @Test(timeout = 30_000)
  public void deadStunServerCostsNothing() throws Exception {
    CallTest.Recorder ra = new CallTest.Recorder();
    CallTest.Recorder rb = new CallTest.Recorder();
    Context.Config config = Context.Config.builder()
        .relayAddress(relay.address).relayFingerprint(relay.fingerprint)
        .includeLoopback(true).stunServers(DEAD_STUN).portMapping(false)
        .disableNetworkWatch(true).build();
    try (Identity ia = Identity.generate();
        Identity ib = Identity.generate();
        Context a = Context.create(ia, config, ra);
        Context b = Context.create(ib, config, rb)) {
      ra.awaitRegistered();
      rb.awaitRegistered();
      Call ca = a.call(b.fingerprint());
      Call cb = rb.awaitIncoming();
      cb.accept();
      ra.awaitState(ca, CallState.ACTIVE);
      rb.awaitState(cb, CallState.ACTIVE);
      ca.close();
      cb.close();
    }
  }

  @Test(timeout = 20_000)
  public void refusedValuesReachTheLibrary() throws Exception {
    try (Identity id = Identity.generate()) {
      Context.Config.Builder base = Context.Config.builder().relayAddress("127.0.0.1:9");
      ParleyException e =
          expect(ParleyException.ADDRESS_FAMILY,
              () -> Context.create(id, base.bindAddress("127.0.0.1:0")
                  .bindAddress6("127.0.0.1:0").build(), null));
      assertEquals(-49, e.code());
      assertEquals("PARLEY_ERR_ADDRESS_FAMILY", e.errorName());
      e = expect(ParleyException.ADDRESS_INVALID,
          () -> Context.create(id, base.bindAddress6("not an address").build(), null));
      assertTrue(e.detail(), e.detail().contains("bind_address6"));
      base.bindAddress(null).bindAddress6(null);
      e = expect(ParleyException.INVALID_ARGUMENT,
          () -> Context.create(id, base.portRange(5000, 4000).build(), null));
      assertTrue(e.detail(), e.detail().contains("port_min"));
      base.portRange(0, 0);
      e = expect(ParleyException.INVALID_ARGUMENT,
          () -> Context.create(id, base.qualityBestProfile(9).build(), null));
      assertTrue(e.detail(), e.detail().contains("quality_best_profile"));
      base.qualityBestProfile(0);
      expect(ParleyException.INVALID_ARGUMENT,
          () -> Context.create(id, base.noPathTimeoutMs(-1).build(), null));
      // The error enum reaches the newest code of the header.
      assertEquals("PARLEY_ERR_ALL_ADDRESSES_FAILED",
          ParleyException.nameOf(ParleyException.ALL_ADDRESSES_FAILED));
      assertEquals(-50, ParleyException.ALL_ADDRESSES_FAILED);
    }
  }

  @Test(timeout = 20_000)
  public void bindAddress6PortIsBound() throws Exception {
    assumeTrue("no IPv6 loopback", hasIpv6Loopback());
    try (Identity id = Identity.generate();
        DatagramSocket taken = new DatagramSocket(new InetSocketAddress("::1", 0))) {
      expect(ParleyException.SOCKET,
          () -> Context.create(id, Context.Config.builder().relayAddress("127.0.0.1:9")
              .bindAddress("127.0.0.1:0").bindAddress6("[::1]:" + taken.getLocalPort())
              .build(), null));
    }
  }

  @Test(timeout = 20_000)
  public void dualBindRegistersWithTheRelay() throws Exception {
    assumeTrue("no IPv6 loopback", hasIpv6Loopback());
    CallTest.Recorder r = new CallTest.Recorder();
    try (Identity id = Identity.generate();
        Context c = Context.create(id, Context.Config.builder()
            .relayAddress(relay.address).relayFingerprint(relay.fingerprint)
            .bindAddress("127.0.0.1:0").bindAddress6("[::1]:0")
            .dtx(true).noPathTimeoutMs(5000).build(), r)) {
      r.awaitRegistered();
      assertEquals("[::1]:0", c.config().bindAddress6());
      assertEquals(5000, c.config().noPathTimeoutMs());
      assertTrue(c.config().dtx());
    }
  }

  /**
   * An IPv6-only relay: an IPv4 bindAddress alone cannot reach it (ADDRESS_FAMILY); the
   * contexts' IPv6 sockets on bindAddress6 register with it and carry a relay call. (Next to
   * an IPv4 bindAddress the library refuses an IPv6 relay *literal* at create: its family
   * check looks at bindAddress only; a relay name would connect over the IPv6 socket.) Then
   * the relay goes away and the calls end with NO_PATH after noPathTimeoutMs, long before
   * the default 30 s.
   */
  @Test(timeout = 30_000)
  public void bindAddress6CarriesAnIpv6RelayAndNoPathTimeoutEndsTheCall() throws Exception {
    assumeTrue("no IPv6 loopback", hasIpv6Loopback());
    try (RelayProcess relay6 = RelayProcess.start("[::1]:0");
        Identity ia = Identity.generate();
        Identity ib = Identity.generate()) {
      assertTrue(relay6.address, relay6.address.startsWith("[::1]:"));
      Context.Config.Builder b = Context.Config.builder()
          .relayAddress(relay6.address).relayFingerprint(relay6.fingerprint)
          .bindAddress("127.0.0.1:0");
      expect(ParleyException.ADDRESS_FAMILY, () -> Context.create(ia, b.build(), null));

      b.bindAddress(null).bindAddress6("[::1]:0").disableDirect(true).dtx(true).noPathTimeoutMs(NO_PATH_MS);
      CallTest.Recorder ra = new CallTest.Recorder();
      CallTest.Recorder rb = new CallTest.Recorder();
      try (Context a = Context.create(ia, b.build(), ra);
          Context bc = Context.create(ib, b.build(), rb)) {
        ra.awaitRegistered();
        rb.awaitRegistered();
        Call ca = a.call(bc.fingerprint());
        Call cb = rb.awaitIncoming();
        cb.accept();
        ra.awaitState(ca, CallState.ACTIVE);
        rb.awaitState(cb, CallState.ACTIVE);
        assertEquals(Path.RELAY, ca.stats().path);

        relay6.close();
        CallTest.StateEvent endA = ra.awaitState(ca, CallState.ENDED);
        CallTest.StateEvent endB = rb.awaitState(cb, CallState.ENDED);
        assertEquals(endA.toString(), ParleyException.NO_PATH, endA.error);
        assertEquals(endB.toString(), ParleyException.NO_PATH, endB.error);
        assertTrue(endA.toString(), endA.text.contains(NO_PATH_MS + " ms"));
        ca.close();
        cb.close();
      }
    }
  }
}
