#include "relay/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "base/error.h"

namespace parley::relay {
namespace {

int parse(std::vector<const char *> args, RelayConfig *c, std::string *err) {
  args.insert(args.begin(), "parley-relay");
  bool help = false;
  return parse_config(int(args.size()), args.data(), c, err, &help);
}

TEST(RelayConfig, DefaultsAndFlags) {
  RelayConfig c;
  std::string err;
  ASSERT_EQ(kOk, parse({}, &c, &err)) << err;
  EXPECT_EQ(c.listen.to_string(), "0.0.0.0:7350");
  EXPECT_TRUE(c.stun_alt_enabled);
  ASSERT_EQ(kOk, parse({"--listen", "127.0.0.1:9000", "--max-room-size", "5", "--stun-alt",
                        "none", "--http3", "off", "--log-level", "debug"},
                       &c, &err))
      << err;
  EXPECT_EQ(c.listen.to_string(), "127.0.0.1:9000");
  EXPECT_EQ(c.limits.max_room_size, 5u);
  EXPECT_FALSE(c.stun_alt_enabled);
  EXPECT_FALSE(c.http3);
  EXPECT_EQ(c.log_level, 4);
}

TEST(RelayConfig, BadValuesNameTheOption) {
  RelayConfig c;
  std::string err;
  EXPECT_EQ(kErrInvalidArgument, parse({"--max-room-size", "65"}, &c, &err));
  EXPECT_NE(err.find("max-room-size"), std::string::npos) << err;
  EXPECT_EQ(kErrInvalidArgument, parse({"--listen", "nowhere"}, &c, &err));
  EXPECT_NE(err.find("listen"), std::string::npos) << err;
  EXPECT_EQ(kErrInvalidArgument, parse({"--frobnicate", "1"}, &c, &err));
  EXPECT_NE(err.find("unknown option 'frobnicate'"), std::string::npos) << err;
  EXPECT_EQ(kErrInvalidArgument, parse({"--max-calls"}, &c, &err));
  EXPECT_EQ(kErrInvalidArgument, parse({"--max-calls", "-1"}, &c, &err));
  EXPECT_EQ(kErrInvalidArgument, parse({"--max-calls", "99999999999999999999999"}, &c, &err));
}

TEST(RelayConfig, AbuseLimitsHaveDefaultsFlagsAndBounds) {
  RelayConfig c;
  std::string err;
  ASSERT_EQ(kOk, parse({}, &c, &err)) << err;
  EXPECT_EQ(c.max_connections_per_address, 32u);
  EXPECT_EQ(c.max_connections_per_network, 256u);
  EXPECT_EQ(c.retry_percent, 10u);
  EXPECT_EQ(c.h3_max_connections, 32u);
  EXPECT_EQ(c.h3_idle_timeout_ms, 5000u);
  EXPECT_EQ(c.signal_queue_bytes, 256u * 1024);
  EXPECT_EQ(c.limits.max_incoming_invites, 16u);
  EXPECT_EQ(c.limits.max_invites_per_pair, 1u);
  EXPECT_EQ(c.limits.signal_byte_rate, 32768u);
  EXPECT_EQ(c.limits.signal_byte_burst, 131072u);
  ASSERT_EQ(kOk, parse({"--max-connections-per-address", "3", "--max-connections-per-network",
                        "9", "--retry-percent", "0", "--h3-max-connections", "2",
                        "--h3-idle-timeout-ms", "2000", "--signal-queue-bytes", "100000",
                        "--max-incoming-invites", "4", "--max-invites-per-pair", "2",
                        "--signal-byte-rate", "1000", "--signal-byte-burst", "70000"},
                       &c, &err))
      << err;
  EXPECT_EQ(c.max_connections_per_address, 3u);
  EXPECT_EQ(c.max_connections_per_network, 9u);
  EXPECT_EQ(c.retry_percent, 0u);
  EXPECT_EQ(c.h3_max_connections, 2u);
  EXPECT_EQ(c.h3_idle_timeout_ms, 2000u);
  EXPECT_EQ(c.signal_queue_bytes, 100000u);
  EXPECT_EQ(c.limits.max_incoming_invites, 4u);
  EXPECT_EQ(c.limits.max_invites_per_pair, 2u);
  EXPECT_EQ(c.limits.signal_byte_rate, 1000u);
  EXPECT_EQ(c.limits.signal_byte_burst, 70000u);
  // A queue or burst smaller than the largest message could never carry it.
  for (const char *bad : {"--signal-queue-bytes=1000", "--signal-byte-burst=1000",
                          "--retry-percent=101", "--max-connections-per-address=0",
                          "--max-invites-per-pair=0", "--h3-idle-timeout-ms=10"}) {
    const std::string flag(bad, std::strchr(bad, '=') - bad);
    const std::string value(std::strchr(bad, '=') + 1);
    EXPECT_EQ(kErrInvalidArgument, parse({flag.c_str(), value.c_str()}, &c, &err)) << bad;
    EXPECT_NE(err.find(flag.substr(2)), std::string::npos) << err;
  }
}

TEST(RelayConfig, FileIsReadFirstAndFlagsOverrideIt) {
  char path[] = "/tmp/parley-relay-config-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream f(path);
    f << "# a comment\n  listen = 127.0.0.1:7000  \nmax-calls = 7 # trailing\n\nseed=/x/y\n";
  }
  RelayConfig c;
  std::string err;
  ASSERT_EQ(kOk, parse({"--max-calls", "9", "--config", path}, &c, &err)) << err;
  EXPECT_EQ(c.listen.to_string(), "127.0.0.1:7000");
  EXPECT_EQ(c.limits.max_calls, 9u);  // the flag wins, wherever --config appears
  EXPECT_EQ(c.seed_path, "/x/y");
  {
    std::ofstream f(path);
    f << "listen = 127.0.0.1:7000\nmax-calls\n";
  }
  EXPECT_EQ(kErrInvalidArgument, parse({"--config", path}, &c, &err));
  EXPECT_NE(err.find(std::string(path) + ":2"), std::string::npos) << err;
  std::remove(path);
  EXPECT_EQ(kErrInvalidArgument, parse({"--config", path}, &c, &err));
  EXPECT_NE(err.find("cannot read config file"), std::string::npos) << err;
}

// Both families: --listen twice, one IPv4 and one IPv6; the command line's replace the file's.
TEST(RelayConfig, ListenTwiceIsOneAddressPerFamily) {
  RelayConfig c;
  std::string err;
  ASSERT_EQ(kOk, parse({"--listen", "127.0.0.1:7350", "--listen", "[::1]:7350"}, &c, &err)) << err;
  EXPECT_EQ(c.listen.to_string(), "127.0.0.1:7350");
  EXPECT_EQ(c.listen_other.to_string(), "[::1]:7350");
  ASSERT_EQ(kOk, parse({"--listen", "[::]:7350"}, &c, &err)) << err;
  EXPECT_EQ(c.listen.to_string(), "[::]:7350");
  EXPECT_FALSE(c.listen_other.is_set());
  EXPECT_EQ(kErrInvalidArgument,
            parse({"--listen", "127.0.0.1:1", "--listen", "127.0.0.2:1"}, &c, &err));
  EXPECT_NE(err.find("one IPv4 and one IPv6"), std::string::npos) << err;
  EXPECT_EQ(kErrInvalidArgument, parse({"--listen", "127.0.0.1:1", "--listen", "[::1]:1",
                                        "--listen", "[::2]:1"}, &c, &err));

  char path[] = "/tmp/parley-relay-config-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream f(path);
    f << "listen = 127.0.0.1:7000\nlisten = [::1]:7000\n";
  }
  ASSERT_EQ(kOk, parse({"--config", path}, &c, &err)) << err;
  EXPECT_EQ(c.listen_other.to_string(), "[::1]:7000");
  ASSERT_EQ(kOk, parse({"--config", path, "--listen", "127.0.0.1:8000"}, &c, &err)) << err;
  EXPECT_EQ(c.listen.to_string(), "127.0.0.1:8000");
  EXPECT_FALSE(c.listen_other.is_set()) << "the command line's listen replaces both";
  std::remove(path);
}

}  // namespace
}  // namespace parley::relay
