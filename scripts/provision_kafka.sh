#!/usr/bin/env bash
# Provision the Apache Kafka broker jars the test suite runs (tests/services.py).
#
# Jars land in .services/kafka/lib (git-ignored) with a .version marker; a second run
# with the same version does nothing. Maven Central (scripts/kafka/pom.xml) is the
# source; the Apache release tarball is the fallback when Maven cannot resolve.
#
# Env: KAFKA_VERSION overrides the pom's kafka.version; STREAMOPS_SERVICES_DIR moves
# .services (default: <repo>/.services).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pom="$repo/scripts/kafka/pom.xml"
services="${STREAMOPS_SERVICES_DIR:-$repo/.services}"
lib="$services/kafka/lib"
marker="$lib/.version"
scala="2.13"

log() { echo "provision_kafka: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

pom_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom" | head -n1)"
version="${KAFKA_VERSION:-$pom_version}"
[[ -n "$version" ]] || die "cannot read <kafka.version> from $pom"

if [[ -f "$marker" && "$(cat "$marker")" == "$version" ]] \
    && compgen -G "$lib/kafka_${scala}-*.jar" >/dev/null; then
    log "Kafka $version already in ${lib#"$repo"/}"
    exit 0
fi

mkdir -p "$services/kafka"
staging="$(mktemp -d "$services/kafka/lib.tmp.XXXXXX")"
trap 'rm -rf "$staging" "$staging.mvn.log"' EXIT

from_maven() {
    command -v mvn >/dev/null || {
        log "mvn not found"
        return 1
    }
    log "resolving org.apache.kafka:kafka_${scala}:$version from Maven Central"
    # Output is kept for failures only (Maven 3.8 prints stray colour codes even with -q).
    if ! mvn -q -B -f "$pom" dependency:copy-dependencies \
        -Dkafka.version="$version" -DoutputDirectory="$staging" >"$staging.mvn.log" 2>&1; then
        sed 's/\x1b\[[0-9;]*m//g' "$staging.mvn.log" | grep -v '^\s*$' | tail -n 20 >&2
        return 1
    fi
}

from_tarball() {
    local name="kafka_${scala}-${version}" url tgz="$staging/kafka.tgz"
    command -v curl >/dev/null || {
        log "curl not found"
        return 1
    }
    for url in "https://downloads.apache.org/kafka/$version/$name.tgz" \
        "https://archive.apache.org/dist/kafka/$version/$name.tgz"; do
        log "trying release tarball $url"
        if curl -fsSL --connect-timeout 10 --max-time 300 -o "$tgz" "$url"; then
            tar -xzf "$tgz" -C "$staging" --strip-components=2 --wildcards "$name/libs/*.jar" \
                && rm -f "$tgz" && return 0
        fi
    done
    return 1
}

if ! from_maven; then
    log "Maven could not provide Kafka $version; falling back to the release tarball"
    rm -rf "${staging:?}"/*
    from_tarball || die "could not get Kafka $version from Maven Central nor the Apache \
release site; install Maven (apt-get install maven) and check access to Maven Central"
fi

compgen -G "$staging/kafka_${scala}-*.jar" >/dev/null || die "no kafka_${scala} jar was fetched"
echo "$version" >"$staging/.version"
rm -rf "$lib"
mv "$staging" "$lib"
rm -f "$staging.mvn.log"
trap - EXIT
log "Kafka $version ready in ${lib#"$repo"/} ($(find "$lib" -name '*.jar' | wc -l) jars)"
