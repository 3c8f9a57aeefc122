// linac's command-line logic as a function, so the fuzz test can drive it in-process.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace lina::linac {

// Runs linac with `args` (without the program name). Returns the exit code:
// 0 success, 1 the program has errors (diagnostics were printed), 2 bad command line.
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Runs linac on an in-memory source instead of a file (for fuzzing); `args` are the options.
int runOnSource(const std::string& name, const std::string& source, const std::vector<std::string>& args,
                std::ostream& out, std::ostream& err);

}  // namespace lina::linac
