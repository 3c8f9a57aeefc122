"""The README's Python snippet runs as pasted (skipped without torch): extracted from README.md and
run in a fresh interpreter, from outside the source tree."""
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch")
SOURCE = os.environ.get("LINA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def test_the_readme_python_snippet_runs_as_pasted(tmp_path):
    text = open(os.path.join(SOURCE, "README.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    snippet = next(b for b in blocks if "chunk_gla(q, k, v, g" in b)
    path = os.pathsep.join(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    env = dict(os.environ, PYTHONPATH=path)
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.match(r"\d+\.\d+\.\d+ (cpu|cuda) torch.Size\(\[2, 128, 4, 64\]\)", done.stdout), done.stdout
