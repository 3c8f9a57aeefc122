#include <iostream>
#include <new>

#include "tools/linac/driver.h"

#if LINA_HAVE_TUNING
#include "runtime/tuning/tuner.h"
#endif

int main(int argc, char** argv) {
#if LINA_HAVE_TUNING
  lina::tuning::installTuneOnMiss();  // LINA_TUNE=1 tunes a shape bucket on its first launch
#endif
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return lina::linac::run(args, std::cout, std::cerr);
  } catch (const std::bad_alloc&) {  // a request larger than this machine: say so, do not abort
    std::cerr << "linac: error: out of memory; pick a smaller --shape or --dims\n";
    return 2;
  }
}
