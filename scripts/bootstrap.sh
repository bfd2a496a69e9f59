#!/usr/bin/env bash
# Sets up everything rfbackup needs on a fresh Debian machine: system tools, uv, the venv.
# Safe to re-run; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Debian packages: scripts/packages.txt, the same list the Dockerfile installs from.
need_apt=()
for pkg in $(scripts/packages.sh machine); do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: missing system packages: ${need_apt[*]} (install them as root)" >&2
        exit 1
    fi
    echo "bootstrap: installing ${need_apt[*]}" >&2
    apt-get update -qq
    # Debian's packages start no service here (no systemd); the tests start their own.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need_apt[@]}" >/dev/null
fi

if ! command -v uv >/dev/null 2>&1; then
    echo "bootstrap: installing uv" >&2
    python3 -m pip install --quiet --disable-pip-version-check uv
fi
# The venv uses Debian's interpreter when there is one: PostgreSQL runs `rfbackup wal-push` as the
# postgres user, who cannot reach an interpreter under root's home (pyenv).
python_args=()
[ -x /usr/bin/python3 ] && python_args=(--python /usr/bin/python3)
# --compile-bytecode: the kubernetes client is 40k-line modules; compiling them on every run
# (PYTHONDONTWRITEBYTECODE) costs seconds per command.
uv sync --locked --quiet --compile-bytecode "${python_args[@]}"
