#!/usr/bin/env bash
# The system packages that `make test` and `make train` need beyond Python's (run by the Makefile before it
# creates .venv; CI's .ci/run calls it too):
#   tesseract-ocr  the `tesseract` binary behind docalign's tesseract OCR engine (pytesseract calls it)
#   python3-venv   `python3 -m venv` on Debian/Ubuntu (only when $PYTHON cannot create a virtual environment)
# Installs the missing ones with apt-get when it can (as root, or with passwordless sudo); otherwise stops at once,
# exit status 2, printing the exact command to run. SYSTEM_PACKAGES=skip skips the check (the OCR tests then fail).
set -euo pipefail
PYTHON=${PYTHON:-python3}
[ "${SYSTEM_PACKAGES:-}" = skip ] && exit 0

missing() {
  need=()
  command -v tesseract >/dev/null 2>&1 || need+=(tesseract-ocr)
  "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)
}

missing
[ ${#need[@]} -eq 0 ] && exit 0

install="apt-get install -y ${need[*]}"
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    as=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    as=(sudo -n)
  else
    as=(none)
  fi
  if [ "${as[*]:-}" != none ]; then
    echo "docalign: installing the system package(s) ${need[*]}: ${as[*]:+${as[*]} }$install" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${as[@]}" apt-get update -qq
    "${as[@]}" apt-get install -y -qq "${need[@]}"
    missing
    if [ ${#need[@]} -eq 0 ]; then exit 0; fi
    echo "docalign: error: ${need[*]} still missing after apt-get install; install it by hand, then run make again." >&2
    exit 2
  fi
  how="sudo apt-get update && sudo $install"
else
  what=()
  for package in "${need[@]}"; do
    case $package in
      tesseract-ocr) what+=("the 'tesseract' command, e.g. 'brew install tesseract' on macOS, 'dnf install tesseract' on Fedora") ;;
      python3-venv) what+=("Python's venv module for $PYTHON") ;;
    esac
  done
  how="install with your system's package manager: $(IFS=';'; echo "${what[*]}" | sed 's/;/; /g')"
fi
cat >&2 <<MSG
docalign: error: the system package(s) ${need[*]} are missing, and this shell cannot install them (no root, no
passwordless sudo, or no apt-get). Run this, then run make again:

    $how

(SYSTEM_PACKAGES=skip make ... skips this check; the tests of the tesseract OCR engine then fail.)
MSG
exit 2
