// The device library's headers, embedded at build time (cmake/embed_device_headers.cmake) and
// handed to NVRTC in memory.
#pragma once

#include <vector>

namespace lina::device {

struct Header {
  const char* name;  // as included by generated code, e.g. "lina/device/chunk.cuh"
  const char* text;
};

const std::vector<Header>& headers();

}  // namespace lina::device
