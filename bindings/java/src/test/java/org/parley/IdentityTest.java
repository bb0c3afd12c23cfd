package org.parley;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.nio.file.Files;
import org.junit.Test;

/** Identities, fingerprints and errors: no network. */
public class IdentityTest {
  private static ParleyException expect(int code, Runnable r) {
    try {
      r.run();
    } catch (ParleyException e) {
      assertEquals(e.toString(), code, e.code());
      assertEquals(ParleyException.nameOf(code), e.errorName());
      assertEquals(Parley.strerror(code), e.description());
      assertTrue(e.getMessage().startsWith(e.errorName() + " (" + code + ")"));
      return e;
    }
    fail("expected " + ParleyException.nameOf(code));
    return null;
  }

  @Test
  public void version() {
    assertEquals(0x000200, Parley.version() & 0xffff00);
    assertEquals("0.2.0", Parley.BINDING_VERSION);
    assertTrue(Parley.versionString().matches("\\d+\\.\\d+\\.\\d+"));
    assertEquals("unknown error", Parley.strerror(-9999));
  }

  @Test
  public void generateAndFingerprint() {
    try (Identity a = Identity.generate(); Identity b = Identity.generate()) {
      assertTrue(a.fingerprint().matches("[0-9a-f]{64}"));
      assertNotEquals(a.fingerprint(), b.fingerprint());
      assertEquals(32, a.publicKey().length);
      assertTrue(a.certificateDer().length > 32);
    }
  }

  @Test
  public void fromSeedIsDeterministic() {
    byte[] seed = new byte[Parley.SEED_LENGTH];
    for (int i = 0; i < seed.length; ++i) seed[i] = (byte) (i * 7 + 1);
    try (Identity a = Identity.fromSeed(seed); Identity b = Identity.fromSeed(seed)) {
      assertEquals(a.fingerprint(), b.fingerprint());
      assertArrayEquals(seed, a.exportSeed());
      assertArrayEquals(a.certificateDer(), b.certificateDer());
    }
    ParleyException e = expect(ParleyException.INVALID_ARGUMENT, () -> Identity.fromSeed(new byte[31]));
    assertEquals("PARLEY_ERR_INVALID_ARGUMENT", e.errorName());
  }

  @Test
  public void saveAndLoad() throws Exception {
    File dir = Files.createTempDirectory("parley-java-id").toFile();
    File f = new File(dir, "id.seed");
    try (Identity a = Identity.generate()) {
      a.save(f.getPath(), false);
      try (Identity b = Identity.load(f.getPath())) {
        assertEquals(a.fingerprint(), b.fingerprint());
      }
      ParleyException e = expect(ParleyException.SEED_FILE_EXISTS, () -> a.save(f.getPath(), false));
      assertFalse(e.detail().isEmpty()); // parley_last_error_message came along
      a.save(f.getPath(), true);
    } finally {
      f.delete();
    }
    expect(ParleyException.SEED_FILE_NOT_FOUND, () -> Identity.load(f.getPath()));
    dir.delete();
  }

  @Test
  public void normalizeFingerprint() {
    String hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    StringBuilder grouped = new StringBuilder();
    for (int i = 0; i < hex.length(); i += 2) {
      if (i > 0) grouped.append(':');
      grouped.append(hex.substring(i, i + 2).toUpperCase());
    }
    assertEquals(hex, Parley.normalizeFingerprint(grouped.toString()));
    ParleyException e = expect(ParleyException.FINGERPRINT_INVALID, () -> Parley.normalizeFingerprint("xyz"));
    assertEquals("PARLEY_ERR_FINGERPRINT_INVALID", e.errorName());
    expect(ParleyException.INVALID_ARGUMENT, () -> Parley.normalizeFingerprint("ab\u0000cd"));
  }

  @Test
  public void closeTwiceIsHarmless() {
    Identity a = Identity.generate();
    a.close();
    a.close();
    assertTrue(a.isClosed());
    expect(ParleyException.CLOSED, a::fingerprint);
  }

  @Test
  public void logLevel() {
    Parley.setLogLevel(Parley.LOG_WARN);
    expect(ParleyException.INVALID_ARGUMENT, () -> Parley.setLogLevel(42));
  }
}
