# lit configuration for linac's FileCheck tests.
import os

import lit.formats

config.name = "lina"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".lina", ".rir", ".cir", ".test"]
config.excludes = ["Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.lina_obj_root, "tests", "lit")

config.environment["FILECHECK_OPTS"] = "--enable-var-scope"
config.substitutions.append(("%linac", os.path.join(config.linac_dir, "linac")))
config.substitutions.append(("%library", os.path.join(config.lina_src_root, "library", "ops")))
config.substitutions.append(("%inputs", os.path.join(config.test_source_root, "Inputs")))
config.environment["PATH"] = os.pathsep.join(
    [config.linac_dir, config.llvm_tools_dir, config.environment.get("PATH", "")])

# The LLVM CPU backend's tests (tests/lit/llvm) need a build with LLVM.
if getattr(config, "lina_cpu_backend", False):
    config.available_features.add("llvm-backend")
