// libFuzzer target: media frames as the network delivers them (from the relay or the peer)
// through parse_frame_header and FrameOpener::open under a fixed key.
//
// Each input is tried twice: whole, as one datagram on a fresh opener; and as a sequence of
// records (u16 big-endian length | that many bytes; a short tail is one last record) fed in
// order to one opener, so the fuzzer can reorder, duplicate and splice the genuine frames of
// the seeds with garbage and exercise index estimation and the replay window.
//
// corpus/media_frame/sealed-* hold frames sealed with FrameSealer under kKey below:
// sealed-frame is one frame (index 7) as a whole datagram; sealed-records is frames with
// indices 2^32-3 .. 2^32+2 (straddling a wrap of the wire sequence) as records, out of order
// and with duplicates and a corrupted copy.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "media/frame_crypto.h"
#include "media/frame_header.h"

namespace {

using namespace parley;
using namespace parley::media;

const uint8_t kKey[kFrameKeyLen] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                              11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                              22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

void check_header(const uint8_t *data, size_t size) {
  FrameHeader h;
  const int r = parse_frame_header(data, size, &h);
  if (r == kOk) {
    uint8_t again[kFrameHeaderSize];
    write_frame_header(h, again);
    if (std::memcmp(again, data, kFrameHeaderSize) != 0) std::abort();
  } else if (r != kErrMediaMalformed) {
    std::abort();
  }
}

uint64_t outcomes(const FrameOpenerStats &s) {
  return s.opened + s.auth_failed + s.replayed + s.too_old + s.malformed + s.too_large;
}

// Opens one datagram and checks what open promises.
void open_one(FrameOpener &o, std::set<uint64_t> &opened, const uint8_t *frame, size_t len,
              std::vector<uint8_t> &plain) {
  const uint64_t before = outcomes(o.stats());
  FrameHeader h;
  uint64_t index = 0;
  size_t plain_len = 0;
  const uint8_t dummy = 0;
  const int r = o.open(frame != nullptr ? frame : &dummy, len, &h, &index, plain.data(),
                       plain.size(), &plain_len);
  if (outcomes(o.stats()) != before + 1) std::abort();
  switch (r) {
    case kOk: break;
    case kErrMediaMalformed:
    case kErrMediaAuth:
    case kErrMediaReplay: return;
    default: std::abort();  // the buffer always fits; nothing else is possible
  }
  if (plain_len != len - kFrameOverhead || uint32_t(index) != h.sequence) std::abort();
  if (!opened.insert(index).second) std::abort();  // a frame's payload is returned once
  if (o.highest_index() < index) std::abort();
  // The AEAD is deterministic: sealing the plaintext again at that index must give back the
  // very same bytes, or open accepted something the sealer would never produce.
  FrameSealer s;
  std::vector<uint8_t> again(len);
  size_t again_len = 0;
  if (s.init(kKey, index) != kOk ||
      s.seal(h, plain.data(), plain_len, again.data(), again.size(), &again_len, nullptr) != kOk ||
      again_len != len || std::memcmp(again.data(), frame, len) != 0) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  log_set_level(kLogOff);
  check_header(data, size);
  std::vector<uint8_t> plain(size);

  FrameOpener whole;
  std::set<uint64_t> opened;
  if (whole.init(kKey) != kOk) std::abort();
  open_one(whole, opened, data, size, plain);

  FrameOpener seq;
  opened.clear();
  if (seq.init(kKey) != kOk) std::abort();
  size_t pos = 0;
  while (pos < size) {
    size_t len = size - pos;
    const uint8_t *rec = data + pos;
    if (len >= 2) {
      const size_t want = size_t(data[pos]) << 8 | data[pos + 1];
      rec += 2;
      len = want < len - 2 ? want : len - 2;
    }
    check_header(rec, len);
    open_one(seq, opened, rec, len, plain);
    pos = size_t(rec - data) + len;
  }
  return 0;
}
