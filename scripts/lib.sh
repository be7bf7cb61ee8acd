# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it: source "$(dirname "$0")/lib.sh"

STATEFOLD_SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034  # used by the scripts that source this file
STATEFOLD_ROOT=$(cd "$STATEFOLD_SCRIPTS_DIR/.." && pwd)

log()  { printf '==> %s\n' "$*"; }
warn() { printf '==> WARNING: %s\n' "$*" >&2; }
die()  { printf '==> ERROR: %s\n' "$*" >&2; exit 1; }

# Prints the package names listed in a packages file (comments and blanks dropped).
read_package_list() {
  local file=${1:-$STATEFOLD_SCRIPTS_DIR/packages.txt}
  [[ -f "$file" ]] || die "package list $file not found"
  sed -e 's/#.*//' -e 's/[[:space:]]\+/\n/g' "$file" | sed '/^$/d'
}

# Prints the packages among the arguments that are not installed.
missing_packages() {
  local pkg status
  for pkg in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == installed ]] || printf '%s\n' "$pkg"
  done
}

# Runs a command as root: directly when root, else through sudo when there is one.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run: $* (and there is no sudo)"
  fi
}

# install_packages [packages-file]
# Installs the packages of the list (default scripts/packages.txt) that are missing;
# does nothing, and never calls apt-get, when all are installed.
install_packages() {
  local file=${1:-$STATEFOLD_SCRIPTS_DIR/packages.txt}
  command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this needs Debian/Ubuntu"
  local -a wanted missing
  mapfile -t wanted < <(read_package_list "$file")
  mapfile -t missing < <(missing_packages "${wanted[@]}")
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "packages: all ${#wanted[@]} installed"
    return 0
  fi
  log "packages: installing ${#missing[@]} missing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  mapfile -t missing < <(missing_packages "${wanted[@]}")
  [[ ${#missing[@]} -eq 0 ]] || die "packages still missing after apt-get: ${missing[*]}"
  log "packages: done"
}
