import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_core_does_not_import_streamlit() -> None:
    code = (
        "import sys, pkgutil, importlib, mediagen\n"
        "for m in pkgutil.walk_packages(mediagen.__path__, 'mediagen.'):\n"
        "    if not m.name.startswith('mediagen.ui') and m.name != 'mediagen.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "assert 'streamlit' not in sys.modules, 'the core imported streamlit'\n"
        "print(len([n for n in sys.modules if n.startswith('mediagen')]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 15  # the walk really imported the package's modules
