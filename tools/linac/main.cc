#include <iostream>

#include "tools/linac/driver.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return lina::linac::run(args, std::cout, std::cerr);
}
