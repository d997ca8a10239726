# Shared helpers for berth's scripts. Source it from bash with `set -euo pipefail` already on:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Repository root (this file lives in <root>/scripts).
BERTH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# step TITLE — print a visible header for the next step of a script.
step() {
  printf '\n==> %s\n' "$*"
}

# note TEXT — an indented informational line under the current step.
note() {
  printf '    %s\n' "$*"
}

# die TEXT — print an error and stop the script.
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# apt_install PACKAGE... — install Debian packages. As root this runs `apt-get update` (once per
# script) and `apt-get install`; otherwise it prints the exact command to run and stops.
_BERTH_APT_UPDATED=0
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    printf 'error: missing prerequisites; install them with:\n    sudo apt-get update && sudo apt-get install -y %s\nthen run this script again.\n' "$*" >&2
    exit 1
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install these packages yourself: $*"
  if [ "$_BERTH_APT_UPDATED" -eq 0 ]; then
    note "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _BERTH_APT_UPDATED=1
  fi
  note "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# ensure_c_toolchain — cargo needs a C compiler and linker (rusqlite compiles SQLite in).
ensure_c_toolchain() {
  if ! command -v cc >/dev/null 2>&1; then
    apt_install gcc libc6-dev
  fi
}

# ensure_python3 — a python3 interpreter on PATH (Debian's, unless PATH says otherwise).
ensure_python3() {
  if ! command -v python3 >/dev/null 2>&1; then
    apt_install python3 python3-venv
  fi
}

# ensure_venv DIR REQUIREMENTS — create (or reuse) a virtualenv at DIR and install the pinned
# REQUIREMENTS into it. A stamp file holding the hash of the requirements and the interpreter
# version makes the second run a no-op.
ensure_venv() {
  local venv="$1" requirements="$2"
  local stamp="$venv/.berth-requirements.sha256"

  # A venv whose interpreter no longer runs (e.g. Python was upgraded) is rebuilt from scratch.
  if [ -e "$venv" ] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    note "existing $venv is broken; recreating it"
    rm -rf "$venv"
  fi

  if [ ! -x "$venv/bin/python" ]; then
    ensure_python3
    note "python3 -m venv $venv ($(python3 --version 2>&1))"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      # Debian ships venv/ensurepip separately; a failed attempt leaves a half-made directory.
      rm -rf "$venv"
      apt_install python3-venv
      python3 -m venv "$venv" || die "python3 -m venv $venv failed even with python3-venv installed"
    fi
  fi

  local want
  want="$( { sha256sum "$requirements" | cut -d' ' -f1; "$venv/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    note "$venv is up to date with $requirements"
    return 0
  fi
  note "pip install -r $requirements"
  rm -f "$stamp"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$requirements"
  printf '%s\n' "$want" > "$stamp"
}

# ensure_docker — a running Docker Engine (Debian's docker.io), plus skopeo and a static busybox
# (the registry and runtime tests build their images FROM scratch out of it: nothing can be pulled
# from Docker Hub). As root, missing packages are installed and dockerd is started in the
# background (log: /var/log/berth-dockerd.log) when no daemon answers; otherwise the exact commands
# to run are printed.
ensure_docker() {
  local missing=()
  command -v docker >/dev/null 2>&1 || missing+=(docker.io)
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
  [ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || missing+=(busybox-static)
  if [ "${#missing[@]}" -gt 0 ]; then
    # shellcheck disable=SC2207
    missing=($(printf '%s\n' "${missing[@]}" | sort -u))
    apt_install "${missing[@]}"
  fi
  if docker info >/dev/null 2>&1; then
    note "docker: $(docker version --format 'engine {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null)"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    die "no Docker daemon answers at ${DOCKER_HOST:-unix:///var/run/docker.sock}: start it (sudo systemctl start docker, or sudo dockerd &) and make sure you may use it (sudo usermod -aG docker $USER, then log in again)"
  fi
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    note "systemctl start docker"
    systemctl start docker || true
  fi
  if ! docker info >/dev/null 2>&1; then
    note "starting dockerd in the background (log: /var/log/berth-dockerd.log)"
    nohup dockerd >/var/log/berth-dockerd.log 2>&1 &
  fi
  local i
  for i in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      note "docker: $(docker version --format 'engine {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null)"
      return 0
    fi
    sleep 1
  done
  die "dockerd did not come up within 60 s; see /var/log/berth-dockerd.log"
}
