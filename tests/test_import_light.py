"""Importing fishsym.symbolic must not import torch (the symbolic layer is pure sympy)."""

import subprocess
import sys


def test_symbolic_does_not_import_torch():
    code = (
        "import sys, fishsym.symbolic; from fishsym.symbolic import families; "
        "families.get('categorical', C=3).fisher; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
