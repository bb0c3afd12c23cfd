// RFC 5769 test vectors (sections 2.1-2.4), as hex.
#ifndef PARLEY_TESTS_STUN_RFC5769_VECTORS_H
#define PARLEY_TESTS_STUN_RFC5769_VECTORS_H

#include <cstdint>
#include <string>
#include <vector>

namespace parley::testing {

inline std::vector<uint8_t> from_hex(const std::string &hex) {
  std::vector<uint8_t> out;
  auto nib = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (size_t i = 0; i + 1 < hex.size();) {
    if (hex[i] == ' ' || hex[i] == '\n') {
      ++i;
      continue;
    }
    out.push_back(uint8_t(nib(hex[i]) << 4 | nib(hex[i + 1])));
    i += 2;
  }
  return out;
}

inline const char kRfc5769Password[] = "VOkJxbRl1RmTxUk/WvJxBt";

// 2.1 Sample Request: SOFTWARE "STUN test client", PRIORITY 0x6e0001ff, ICE-CONTROLLED
// 0x932ff9b151263b36, USERNAME "evtj:h6vY" (padded with spaces), MESSAGE-INTEGRITY, FINGERPRINT.
inline const char kRfc5769Request[] =
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "802200105354554e207465737420636c69656e74"
    "002400046e0001ff"
    "80290008932ff9b151263b36"
    "000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004e57a3bcf";

// 2.2 Sample IPv4 Response: SOFTWARE "test vector", XOR-MAPPED-ADDRESS 192.0.2.1:32853.
inline const char kRfc5769Ipv4Response[] =
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96";

// 2.3 Sample IPv6 Response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
inline const char kRfc5769Ipv6Response[] =
    "010100482112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004c8fb0b4c";

// 2.4 Sample Request with Long-Term Authentication: USERNAME (18 bytes, Katakana "matrix"),
// NONCE "f//499k954d6OL34oL9FSTvy64sA", REALM "example.org", MESSAGE-INTEGRITY with key
// MD5(username ":" realm ":" "TheMatrIX").
inline const char kRfc5769LongTermRequest[] =
    "000100602112a44278ad3433c6ad72c029da412e"
    "00060012e3839ee38388e383aae38383e382afe382b90000"
    "0015001c662f2f3439396b39353464364f4c33346f4c39465354767936347341"
    "0014000b6578616d706c652e6f726700"
    "00080014f67024656dd64a3e02b8e0712e85c9a28ca89666";

}  // namespace parley::testing

#endif
