"""What a release would ship, checked as a user meets it (`tox -e dist`, which runs `python tests/e2e/dist.py`).

1. Build the sdist and the wheel from this tree.
2. The sdist holds every file git tracks here (when run from a git checkout).
3. A fresh virtual environment takes the wheel and the newest mcp's test pins: the entry point
   `opentelemetry-instrument` loads, `py.typed`, the `mcp-otel-viewer` console script; the wheel carries the
   LICENSE.
4. The unpacked sdist runs its own test suite against that environment: the full run's mcp 2.3 suite
   (arguments go on to pytest).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PINS = "tests/requirements/mcp2.3.txt"


def run(*command: str | Path, cwd: Path = ROOT) -> str:
    print("$", " ".join(map(str, command)), flush=True)
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout


def tracked_files() -> set[str] | None:
    try:
        listed = run("git", "ls-files", "-z")
    except (OSError, subprocess.CalledProcessError):
        return None  # not a git checkout: an unpacked sdist, say
    return {name for name in listed.split("\0") if name and (ROOT / name).is_file()}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mcp-otel-dist-") as scratch:
        out = Path(scratch)
        run(sys.executable, "-m", "build", "--installer", "uv", "--outdir", out / "dist", ".")
        [sdist] = (out / "dist").glob("*.tar.gz")
        [wheel] = (out / "dist").glob("*.whl")

        with tarfile.open(sdist) as archive:
            if hasattr(tarfile, "data_filter"):  # Python 3.10.12 and later
                archive.extractall(out, filter="data")
            else:
                archive.extractall(out)
            top = Path(archive.getnames()[0]).parts[0]
        unpacked = out / top
        shipped = {str(path.relative_to(unpacked)) for path in unpacked.rglob("*") if path.is_file()}
        tracked = tracked_files()
        if tracked is not None:
            missing = sorted(tracked - shipped)
            assert not missing, f"the sdist lacks files git tracks: {missing}"

        with zipfile.ZipFile(wheel) as archive:  # the license pyproject.toml names, its text in the wheel
            licenses = [name for name in archive.namelist() if ".dist-info/licenses/" in name]
            assert [Path(name).name for name in licenses] == ["LICENSE"], licenses
            assert archive.read(licenses[0]).decode("utf-8") == (ROOT / "LICENSE").read_text(encoding="utf-8")

        venv.create(out / "venv", with_pip=False)
        python = out / "venv" / ("Scripts" if sys.platform == "win32" else "bin") / "python"
        run("uv", "pip", "install", "--compile-bytecode", "--python", python, f"{wheel}[viewer]", "-r", unpacked / PINS)
        entry_points = run(
            python,
            "-c",
            "from importlib.metadata import entry_points; from importlib.resources import files; "
            "print(sorted(e.value for e in entry_points(group='opentelemetry_instrumentor') if e.name == 'mcp')); "
            "print(files('opentelemetry_instrumentation_mcp').joinpath('py.typed').is_file())",
        ).split()
        assert entry_points == ["['opentelemetry_instrumentation_mcp:McpInstrumentor']", "True"], entry_points
        assert "OTLP" in run(python.parent / "mcp-otel-viewer", "--help")

        # the unpacked sdist's own suite, against the installed wheel: `pytest` by its script, so that the sdist's own
        # copy of the package (its top level) is not on `sys.path`, as `python -m` would put it; the TypeScript peers
        # are tox's interop-* environments
        pytest = [python.parent / "pytest", "-q", "-n", "auto", "--ignore=tests/interop", *sys.argv[1:]]
        subprocess.run(pytest, cwd=unpacked, check=True)


if __name__ == "__main__":
    main()
