"""`lina` / `python -m lina`: the version of lina and of the NVRTC and CUDA driver it finds here,
and the command-line tools that pip installs beside it (linac, lina-run, lina-convert)."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="lina", description="lina: a JIT compiler for linear-attention recurrences. The tools: linac (compile, "
        "print IRs, check, tune), lina-run (run GLA/RetNet/GSA checkpoints), lina-convert (weight conversion); "
        "python -m lina.convert and python -m lina.finetune for the torch side.")
    parser.add_argument("--version", action="store_true", help="print lina's version and the NVRTC and CUDA driver found")
    args = parser.parse_args(argv)
    import lina
    if args.version:
        v = lina.versions()
        ok, why = lina.cuda_available()
        print(f"lina {v['lina']} (NVRTC {v['nvrtc']}, CUDA driver {v['cuda_driver']}; "
              f"GPU: {'yes' if ok else 'no: ' + why})")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
