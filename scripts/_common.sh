# shellcheck shell=bash
# Helpers shared by scripts/test, scripts/pg-start and scripts/redis-start.
# Sourced, not executed. Everything here logs to stderr so that the service
# scripts can print `export NAME=value` lines (and nothing else) on stdout.

export DEBIAN_FRONTEND=noninteractive

# CI runs with a minimal environment: make sure HOME and the sbin dirs
# (useradd, runuser) and cargo's bin dir are there.
if [ -z "${HOME:-}" ]; then
    HOME="$(getent passwd "$(id -un)" | cut -d: -f6)"
    export HOME
fi
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" ;; esac
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi
export PATH

# Are we running in CI? (CI sets CI=true; any non-empty value but 0/false counts.)
is_ci() {
    case "${CI:-}" in
        "" | 0 | false | FALSE | False | no) return 1 ;;
        *) return 0 ;;
    esac
}

section() { printf '\n==> %s\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

# Milliseconds since the epoch, for "took N.Ns" lines.
now_ms() { date +%s%3N; }
elapsed_since() { # $1 = start in ms
    local d=$(($(now_ms) - $1))
    printf '%d.%01ds' $((d / 1000)) $(((d % 1000) / 100))
}

# apt-get install the given packages if any of them is missing. Runs
# `apt-get update` only when something has to be installed.
apt_install_if_missing() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            warn "need root (or sudo) to apt-get install ${missing[*]}"
            return 1
        }
        sudo=(sudo -n)
    fi
    info "apt-get update && apt-get install ${missing[*]}"
    local apt_opts=(-y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0) log
    log="$(mktemp)"
    if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" \
            install --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

# Serialize concurrent runs of a service script (two `scripts/test` at once).
lock_or_die() { # lock_or_die FILE
    mkdir -p "$(dirname "$1")"
    exec 9>"$1"
    flock -w 300 9 || die "timed out waiting for the lock $1"
}

# Is something accepting TCP connections on 127.0.0.1:$1 ?
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
