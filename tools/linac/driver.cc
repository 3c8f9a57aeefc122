// linac: the command line, parsed once (options.cc) and dispatched to one file per subcommand.
#include "tools/linac/driver.h"

#include "runtime/versions.h"

#include "compiler/pipeline/pipeline.h"
#include "tools/linac/commands.h"
#include "support/error.h"

namespace lina::linac {

namespace {

int dispatch(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err) {
  if (o.command == "run-reference") return runReferenceCommand(o, sources, file, out, err);
  if (o.command == "compile") return compileCommand(o, sources, file, out, err);
  if (o.command == "check") return checkCommand(o, sources, file, out, err);
  if (o.command == "tune") return tuneCommand(o, sources, file, out, err);
  return printCommand(o, sources, file, out, err);
}

bool handleInfo(const std::vector<std::string>& args, std::ostream& out) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      out << kUsage;
      return true;
    }
    if (a == "--version") {
      out << runtime::versionLine("linac") << "\n";
      return true;
    }
    if (a == "--list-passes") {
      // Every stage of the pipeline in order, with the level it produces.
      for (const StageInfo& s : pipelineStages()) {
        std::string name = s.name;
        out << name << std::string(name.size() < 21 ? 21 - name.size() : 1, ' ') << '[' << s.level << "] "
            << s.summary << '\n';
      }
      return true;
    }
  }
  return false;
}

}  // namespace

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (handleInfo(args, out)) return 0;
  Options o;
  if (!parseOptions(args, o, err)) return 2;
  SourceManager sources;
  std::string error;
  uint32_t file = sources.addFile(o.file, error);
  if (!file) {
    err << "linac: error: " << error << '\n';
    return 2;
  }
  return dispatch(o, sources, file, out, err);
}

int runOnSource(const std::string& name, const std::string& source, const std::vector<std::string>& args,
                std::ostream& out, std::ostream& err) {
  std::vector<std::string> withFile = args;
  withFile.push_back(name);
  Options o;
  if (!parseOptions(withFile, o, err)) return 2;
  SourceManager sources;
  uint32_t file = sources.addBuffer(name, source);
  return dispatch(o, sources, file, out, err);
}

}  // namespace lina::linac
