// A 128-bit content hash (two independent 64-bit FNV-1a lanes) for cache keys and checksums.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace lina {

class Hasher {
 public:
  Hasher& add(std::string_view bytes) {
    for (unsigned char c : bytes) {
      a_ = (a_ ^ c) * 0x100000001b3ULL;
      b_ = (b_ ^ (c + 0x9eU)) * 0x100000001b3ULL;
      b_ ^= b_ >> 29;
    }
    // A separator, so ("ab", "c") and ("a", "bc") differ.
    a_ = (a_ ^ 0xff) * 0x100000001b3ULL;
    b_ = (b_ ^ 0x1ff) * 0x100000001b3ULL;
    return *this;
  }
  std::string hex() const {
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(a_),
                  static_cast<unsigned long long>(b_));
    return buf;
  }

 private:
  uint64_t a_ = 0xcbf29ce484222325ULL;
  uint64_t b_ = 0x84222325cbf29ce4ULL;
};

}  // namespace lina
