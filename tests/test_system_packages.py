"""``scripts/system-packages.sh`` (run by ``make`` before it creates .venv): installs tesseract-ocr with apt-get
when it can, else stops at once with the command to run.

The script runs for real under a PATH without ``tesseract``; ``apt-get``, ``sudo`` and ``id`` are small scripts in
that PATH that record their arguments (this machine's packages are never touched), so each branch is exercised:
root, passwordless sudo, sudo with a password, no apt-get, and an install that does not provide the binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "system-packages.sh"


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path):
    """A PATH with the basic tools but no tesseract, apt-get or sudo; ``add`` puts fakes there."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bash", "cat", "sed", "echo", "env", "touch", "chmod"):
        found = shutil.which(name)
        if found:
            (bin_dir / name).symlink_to(found)
    log = tmp_path / "calls.log"

    def run(uid: int = 0, **env: str) -> subprocess.CompletedProcess:
        _tool(bin_dir, "id", f'[ "$1" = -u ] && echo {uid}')
        return subprocess.run(
            ["bash", str(SCRIPT)],
            env={"PATH": str(bin_dir), "PYTHON": sys.executable, "HOME": str(tmp_path), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def add(name: str, body: str) -> None:
        _tool(bin_dir, name, body)

    return bin_dir, log, run, add


def fake_apt(add, log: Path, bin_dir: Path, provides: bool = True) -> None:
    make = (
        f'printf "#!/bin/bash\\necho tesseract 5\\n" > {bin_dir}/tesseract; chmod +x {bin_dir}/tesseract'
        if provides
        else ":"
    )
    add("apt-get", f'echo "apt-get $*" >> {log}; [ "$1" = install ] && {{ {make}; }}; exit 0')


def test_nothing_to_do_when_tesseract_is_there(machine):
    bin_dir, log, run, add = machine
    add("tesseract", "echo tesseract 5")
    out = run()
    assert out.returncode == 0 and out.stderr == "" and not log.exists()


def test_root_with_apt_installs_tesseract(machine):
    bin_dir, log, run, add = machine
    fake_apt(add, log, bin_dir)
    out = run(uid=0)
    assert out.returncode == 0, out.stderr
    assert log.read_text().splitlines() == ["apt-get update -qq", "apt-get install -y -qq tesseract-ocr"]
    assert "installing the system package(s) tesseract-ocr: apt-get install -y tesseract-ocr" in out.stderr


def test_passwordless_sudo_installs_tesseract(machine):
    bin_dir, log, run, add = machine
    fake_apt(add, log, bin_dir)
    add("sudo", f'[ "$1" = -n ] && shift; echo "sudo $*" >> {log}; "$@"')
    out = run(uid=1000)
    assert out.returncode == 0, out.stderr
    assert "sudo apt-get install -y -qq tesseract-ocr" in log.read_text()
    assert (bin_dir / "tesseract").exists()


def test_sudo_with_a_password_stops_with_the_command(machine):
    bin_dir, log, run, add = machine
    fake_apt(add, log, bin_dir)
    add("sudo", "exit 1")  # `sudo -n true` fails: a password would be asked
    out = run(uid=1000)
    assert out.returncode == 2
    assert "sudo apt-get update && sudo apt-get install -y tesseract-ocr" in out.stderr
    assert "apt-get install" not in (log.read_text() if log.exists() else "")  # nothing was attempted


def test_no_apt_get_stops_with_what_to_install(machine):
    bin_dir, log, run, add = machine
    out = run(uid=0)
    assert out.returncode == 2
    assert "the system package(s) tesseract-ocr are missing" in out.stderr and "'tesseract' command" in out.stderr


def test_an_install_without_the_binary_is_an_error(machine):
    bin_dir, log, run, add = machine
    fake_apt(add, log, bin_dir, provides=False)
    out = run(uid=0)
    assert out.returncode == 2 and "tesseract-ocr still missing after apt-get install" in out.stderr


def test_skip(machine):
    bin_dir, log, run, add = machine
    assert run(SYSTEM_PACKAGES="skip").returncode == 0


def test_make_runs_the_check_before_creating_the_venv(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "test", f"VENV={venv}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    lines = out.stdout.splitlines()
    check = next(i for i, line in enumerate(lines) if "scripts/system-packages.sh" in line)
    create = next(i for i, line in enumerate(lines) if "-m venv" in line)
    assert check < create and any("pytest" in line for line in lines[create:])
