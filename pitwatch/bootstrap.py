"""Set up a fresh Debian machine, then run the demo or the tests.

    python3 -m pitwatch.bootstrap demo [DIR] [pitwatch demo options]
    python3 -m pitwatch.bootstrap test [pytest options]

Standard library only: it runs before the virtual environment exists. Idempotent:
Debian packages are installed only when their binaries are missing, and the virtual
environment is reinstalled only when pyproject.toml or constraints.txt changed. The
exact versions come from constraints.txt, the lock the tests and the image use.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
# binary -> Debian package that brings it
DEMO_BINARIES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "redis-server": "redis-server",
}
TEST_BINARIES = {**DEMO_BINARIES, "docker-compose": "docker-compose",
                 "victoria-metrics": "victoria-metrics"}


def say(msg: str) -> None:
    print(f"[bootstrap] {msg}", flush=True)


def run(argv: list[str], **kw) -> None:
    subprocess.run(argv, check=True, **kw)


def debian_packages(binaries: dict[str, str]) -> None:
    missing = sorted({pkg for binary, pkg in binaries.items() if shutil.which(binary) is None})
    if not missing:
        return
    if shutil.which("apt-get") is None:
        sys.exit(f"[bootstrap] missing {', '.join(missing)} and no apt-get: install them by hand")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say(f"installing Debian packages: {' '.join(missing)}")
    # A fresh machine has no package lists yet.
    run(sudo + ["apt-get", "update", "-q"], env=env)
    run(sudo + ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)


def virtualenv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        say(f"creating {VENV}")
        run([sys.executable, "-m", "venv", str(VENV)])
    stamp = VENV / ".pitwatch-installed"
    want = hashlib.sha256(b"".join((ROOT / name).read_bytes()
                                   for name in ("pyproject.toml", "constraints.txt"))).hexdigest()
    if not stamp.exists() or stamp.read_text() != want:
        say("installing pitwatch and its Python dependencies into .venv")
        run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
        run([str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"),
             "-e", f"{ROOT}[test]"])
        stamp.write_text(want)
    return python


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test") or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    what, rest = argv[0], argv[1:]
    debian_packages(TEST_BINARIES if what == "test" else DEMO_BINARIES)
    python = virtualenv()
    # The venv's bin holds litestream and pitwatch: put it first for every child.
    env = {**os.environ, "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    if what == "demo":
        if not rest or rest[0].startswith("-"):
            rest = [str(ROOT / "demo"), *rest]
        argv = [str(VENV / "bin" / "pitwatch"), "demo", *rest]
    else:
        # Two workers, one module at a time each (module fixtures start whole stacks):
        # the slow modules mostly wait on real timers (alert `for`, group_wait, drills),
        # so two of them share two cores well. `-n 0` runs in one process.
        chosen = any(a.startswith(("-n", "--numprocesses", "--dist")) for a in rest)
        workers = [] if chosen else ["-n", "2", "--dist", "loadfile"]
        argv = [str(python), "-m", "pytest", *workers, *rest]
    os.chdir(ROOT)
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
