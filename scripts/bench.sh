#!/usr/bin/env bash
# scripts/bench.sh: the body of `make bench`.
#
# 1. The Go benchmarks of capture/ and detect/ (go test -bench, -benchmem).
# 2. A replay race on a synthetic 1,000,000-packet SYN-scan capture from
#    10,000 sources (scripts/gensyn, cached in scripts/.cache/): the best of
#    three runs of `tcpdump -r FILE -w /dev/null` (libpcap's own read speed)
#    and of `bin/scanwarden replay FILE`, in packets per second, their ratio,
#    and scanwarden's peak resident memory.
# 3. A flood of forged sources: 1,000,000 SYNs from 1,000,000 distinct
#    sources replayed, with scanwarden's peak resident memory (bounded by
#    MAX_SOURCES whatever the number of sources).
# 4. Ban speed per blocking backend (scripts/bench-sets.sh): the nftables
#    and ipset backends' Go benchmarks (bans/s, 100,000 bans loaded), and
#    for iptables bans/s through the backend and a 100,000-rule
#    ip6tables-restore.
# 5. Per-packet cost of the firewall with 0 and 100,000 bans, per backend,
#    for packets to the host and packets it forwards (scripts/fwdbench fwd:
#    a generator, the host with the backend's own layout, and a sink
#    behind it, in namespaces of their own).
# 6. nmap -sS and -sF over the default 1,000 ports (IPv4 and IPv6) and -sA
#    and -sM over the top 23, five runs each, against the daemon in the lab
#    with its default config, with Debian's portsentry.conf and per
#    backend, and against Debian's PortSentry 1.2 as the reference
#    (scripts/bench-nmap.sh, some 8 minutes): ports nmap could still
#    classify, probes before the block, ms to the block, and issue #13's
#    targets beside them.
# Parts 4 to 6 need root and print "skipped: REASON" without it; every
# figure is printed, none asserted. A part that breaks does not stop the
# others; the exit status then says so.
#
# Environment: BENCH_PACKETS (default 1000000), BENCH_SOURCES (default
# 10000), BENCH_RUNS (default 3), BENCH_CACHE (default scripts/.cache),
# BENCH_FWD_FLAGS (extra flags of fwdbench fwd, e.g. "-rounds 5"); and
# those of bench-sets.sh and bench-nmap.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKETS=${BENCH_PACKETS:-1000000}
SOURCES=${BENCH_SOURCES:-10000}
RUNS=${BENCH_RUNS:-3}
CACHE=${BENCH_CACHE:-scripts/.cache}
BIN=bin/scanwarden
TMP=""

log() { printf 'bench: %s\n' "$*"; }
die() {
	printf 'bench: error: %s\n' "$*" >&2
	exit 1
}

cleanup() {
	[[ -z $TMP ]] || rm -rf "$TMP"
}

find_go() {
	if command -v go >/dev/null; then
		GO=go
	elif [[ -x /usr/local/go/bin/go ]]; then
		GO=/usr/local/go/bin/go
	else
		die "go is missing: run scripts/deps.sh"
	fi
}

go_benchmarks() {
	log "\$ go test -run '^\$' -bench . -benchmem ./capture/ ./detect/"
	"$GO" test -run '^$' -bench . -benchmem ./capture/ ./detect/
}

# synthetic_file: set FILE to the cached synthetic capture, generating it
# when missing (the name carries gensyn's source hash, so a changed
# generator makes a new file).
synthetic_file() {
	local hash
	hash=$(sha256sum scripts/gensyn/main.go | cut -c1-12)
	FILE=$CACHE/syn-n${PACKETS}-s${SOURCES}-${hash}.pcap
	if [[ -s $FILE ]]; then
		log "synthetic capture: $FILE (cached)"
		return
	fi
	mkdir -p "$CACHE"
	rm -f "$CACHE"/syn-n"${PACKETS}"-s"${SOURCES}"-*.pcap
	"$GO" build -o "$TMP/gensyn" ./scripts/gensyn
	"$TMP/gensyn" -o "$FILE" -n "$PACKETS" -sources "$SOURCES"
	log "synthetic capture: $FILE ($(du -h "$FILE" | cut -f1))"
}

# time_ns CMD...: run CMD with stdout to /dev/null, stderr to $TMP/stderr;
# set NS to its wall time in nanoseconds and RSS to its peak resident set in
# KiB (from /usr/bin/time). Fails when CMD fails.
time_ns() {
	local t0 t1 rc=0
	t0=$(date +%s%N)
	/usr/bin/time -f '%M' -o "$TMP/rss" "$@" >/dev/null 2>"$TMP/stderr" || rc=$?
	t1=$(date +%s%N)
	if ((rc != 0)); then
		die "'$*' failed (exit $rc): $(tail -n 5 "$TMP/stderr")"
	fi
	NS=$((t1 - t0))
	RSS=$(tail -n 1 "$TMP/rss")
}

# best NAME CMD...: best of RUNS; sets BEST_NS and PEAK_RSS (the largest of
# the runs).
best() {
	local name=$1 i
	shift
	BEST_NS=0 PEAK_RSS=0
	for ((i = 1; i <= RUNS; i++)); do
		time_ns "$@"
		log "$name run $i: $(fmt_s "$NS") s, $(pps "$NS") packets/s"
		if ((BEST_NS == 0 || NS < BEST_NS)); then
			BEST_NS=$NS
		fi
		if ((RSS > PEAK_RSS)); then
			PEAK_RSS=$RSS
		fi
	done
}

fmt_s() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
pps() { awk -v ns="$1" -v n="$PACKETS" 'BEGIN { printf "%.0f", n / (ns / 1e9) }'; }

main() {
	[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing: run scripts/deps.sh as root (package time)"
	command -v tcpdump >/dev/null || die "tcpdump is missing: run scripts/deps.sh as root"
	find_go
	TMP=$(mktemp -d /tmp/scanwarden-bench.XXXXXX)
	trap cleanup EXIT

	go_benchmarks
	echo

	synthetic_file
	local tcpdump_ns scanwarden_ns
	# -Z root: keep tcpdump from switching users (it would then fail to read
	# a file only root can read); its speed is the same.
	best tcpdump tcpdump -Z root -r "$FILE" -w /dev/null
	tcpdump_ns=$BEST_NS

	if [[ ! -x $BIN ]]; then
		log "$BIN is missing: go build -o $BIN ./cmd/scanwarden"
		"$GO" build -o "$BIN" ./cmd/scanwarden
	fi
	best scanwarden "$BIN" replay "$FILE"
	scanwarden_ns=$BEST_NS
	log "scanwarden replay summary (stderr of the last run):"
	sed 's/^/bench:   /' "$TMP/stderr"

	echo
	printf '%-28s %12s %14s\n' "replay of $PACKETS packets" "best (s)" "packets/s"
	printf '%-28s %12s %14s\n' "tcpdump -r -w /dev/null" "$(fmt_s "$tcpdump_ns")" "$(pps "$tcpdump_ns")"
	printf '%-28s %12s %14s\n' "scanwarden replay" "$(fmt_s "$scanwarden_ns")" "$(pps "$scanwarden_ns")"
	awk -v s="$scanwarden_ns" -v t="$tcpdump_ns" \
		'BEGIN { printf "ratio scanwarden/tcpdump (packets/s): %.2f\n", t / s }'
	printf 'scanwarden peak RSS: %d KiB (%.1f MiB)\n' "$PEAK_RSS" "$(awk -v k="$PEAK_RSS" 'BEGIN { print k / 1024 }')"

	echo
	forged_sources

	local broken=()
	echo
	bash scripts/bench-sets.sh || broken+=("bench-sets.sh (exit $?)")
	echo
	fwd_bench || broken+=("fwdbench fwd (exit $?)")
	echo
	bash scripts/bench-nmap.sh || broken+=("bench-nmap.sh (exit $?)")
	if ((${#broken[@]} > 0)); then
		die "these parts broke (their output is above): ${broken[*]}"
	fi
}

# fwd_bench: per-packet cost with 0 and 100,000 bans (see scripts/fwdbench).
fwd_bench() {
	log "per-packet cost of the firewall backends (scripts/fwdbench fwd)"
	if ((EUID != 0)); then
		log "fwdbench: skipped: needs root (network namespaces, firewall structures in them)"
		return 0
	fi
	"$GO" build -o "$TMP/fwdbench" ./scripts/fwdbench
	# shellcheck disable=SC2086 # BENCH_FWD_FLAGS is a list of flags
	"$TMP/fwdbench" fwd ${BENCH_FWD_FLAGS:-}
}

# forged_sources: replay a capture in which every packet has a source of
# its own, and print scanwarden's peak memory.
forged_sources() {
	local file=$TMP/forged.pcap
	if [[ ! -x $TMP/gensyn ]]; then
		"$GO" build -o "$TMP/gensyn" ./scripts/gensyn
	fi
	"$TMP/gensyn" -o "$file" -n "$PACKETS" -sources "$PACKETS" >/dev/null
	time_ns "$BIN" replay "$file"
	log "forged flood: $(tail -n 1 "$TMP/stderr")"
	printf 'forged flood of %d distinct sources: %s s, peak RSS %d KiB (%.1f MiB)\n' "$PACKETS" "$(fmt_s "$NS")" "$RSS" \
		"$(awk -v k="$RSS" 'BEGIN { print k / 1024 }')"
}

main "$@"
