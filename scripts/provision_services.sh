#!/usr/bin/env bash
# Make the real services of the integration tests available: redis-server, a Java
# runtime, the Apache Kafka broker jars (scripts/provision_kafka.sh), and Node.js with
# the npm packages of scripts/js/package.json (socket.io-client, ws) in
# .services/realtime-js, which run the realtime spec's JavaScript sample.
#
# Called by `make test` on every run, so it is quick and silent-ish when all is there.
# Missing system packages are installed with apt-get when we are root or have
# passwordless sudo; otherwise it says what to install and exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { echo "provision_services: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# Debian package for each command the tests or the Kafka provisioning need.
declare -A package_for=(
    [redis-server]=redis-server
    [java]=default-jre-headless
    [mvn]=maven
    [node]=nodejs
    [npm]=npm
)

have_java() {
    [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]] || command -v java >/dev/null
}

missing=()
command -v "${STREAMOPS_REDIS_SERVER:-redis-server}" >/dev/null || missing+=(redis-server)
have_java || missing+=(java)
command -v node >/dev/null || missing+=(node)
command -v npm >/dev/null || missing+=(npm)
# Maven is needed only while the Kafka jars are not provisioned yet.
if ! command -v mvn >/dev/null && ! compgen -G "${STREAMOPS_SERVICES_DIR:-$here/../.services}/kafka/lib/kafka_*.jar" >/dev/null; then
    missing+=(mvn)
fi

if ((${#missing[@]})); then
    packages=()
    for cmd in "${missing[@]}"; do packages+=("${package_for[$cmd]}"); done
    if [[ "$(id -u)" == 0 ]]; then
        sudo=()
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        die "missing ${missing[*]}; install them with: sudo apt-get install -y ${packages[*]}"
    fi
    log "installing ${packages[*]} (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null \
        || die "apt-get install ${packages[*]} failed"
    # Debian starts a system redis-server on :6379 after install; the tests run their
    # own on a free port, so leave it alone rather than guess about service managers.
    command -v "${STREAMOPS_REDIS_SERVER:-redis-server}" >/dev/null \
        || die "redis-server still not found after installing ${package_for[redis-server]}"
    have_java || die "java still not found after installing ${package_for[java]}"
    command -v node >/dev/null || die "node still not found after installing nodejs"
    command -v npm >/dev/null || die "npm still not found after installing npm"
fi

# npm packages: installed from the committed lock file (npm ci); redone when it changes.
provision_js() {
    local repo src dest
    repo="$(cd "$here/.." && pwd)"
    src="$here/js"
    dest="${STREAMOPS_SERVICES_DIR:-$repo/.services}/realtime-js"
    local stamp
    stamp="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)"
    if [[ -f "$dest/.provisioned" && "$(cat "$dest/.provisioned")" == "$stamp" ]] \
        && [[ -d "$dest/node_modules/socket.io-client" && -d "$dest/node_modules/ws" ]]; then
        log "npm packages already in ${dest#"$repo"/}"
        return 0
    fi
    log "installing npm packages (socket.io-client, ws) into $dest"
    mkdir -p "$dest"
    cp "$src/package.json" "$src/package-lock.json" "$dest/"
    (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
        || die "npm ci in $dest failed (is the npm registry reachable?)"
    [[ -d "$dest/node_modules/socket.io-client" ]] || die "socket.io-client missing after npm ci"
    echo "$stamp" >"$dest/.provisioned"
}
provision_js

bash "$here/provision_kafka.sh" || die "Kafka provisioning failed (see above)"
