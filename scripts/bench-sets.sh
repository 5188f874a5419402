#!/usr/bin/env bash
# scripts/bench-sets.sh: how fast bans go in, per blocking backend (part of
# `make bench`). Figures are printed, never asserted.
#
#  - nftables and ipset: the backends' own Go benchmarks,
#      go test -run '^$' -bench . -benchmem ./block/nftables ./block/ipset
#    (root only; they make their own network namespaces): BenchmarkBlock
#    gives bans per second (ns/op is one ban), BenchmarkSync100k the time
#    to load 100,000 bans.
#  - iptables, by a comparable method in a network namespace of this
#    script's own (swbs-PID-ipt, deleted on exit):
#      bans/s:      BENCH_IPT_BANS (300) IPv6 and 254 IPv4 bans through
#                   scanwarden's iptables backend, one Block call each as
#                   the daemon makes them (scripts/fwdbench bans);
#      100k load:   100,000 bans through the backend would take 200,000
#                   iptables runs (the time is estimated from the rate
#                   above), so the load is measured with ONE
#                   ip6tables-restore of the backend's 100,000 rules into
#                   the chain the backend made (SCANWARDEN, raw table;
#                   scripts/fwdbench load), labelled as such: a lower
#                   bound the backend itself never reaches.
#
# Without root, or when a package does not exist yet or has no benchmarks,
# the part says "skipped: REASON" and the rest still runs; the exit status
# is 0 unless the script itself is broken.
#
# Environment: BENCH_IPT_BANS (default 300), BENCH_SET_BANS (default 100000).
set -euo pipefail
export LC_ALL=C

cd "$(dirname "${BASH_SOURCE[0]}")/.."

IPT_BANS=${BENCH_IPT_BANS:-300}
SET_BANS=${BENCH_SET_BANS:-100000}
NS=""
TMP=""

log() { printf 'bench-sets: %s\n' "$*"; }
skipped() { printf 'bench-sets: %s: skipped: %s\n' "$1" "$2"; }

cleanup() {
	if [[ -n $NS && -e /run/netns/$NS ]]; then
		ip netns del "$NS" || log "warning: could not delete namespace $NS"
	fi
	[[ -z $TMP ]] || rm -rf "$TMP"
}

find_go() {
	if command -v go >/dev/null; then
		GO=go
	elif [[ -x /usr/local/go/bin/go ]]; then
		GO=/usr/local/go/bin/go
	else
		GO=""
	fi
}

# go_bench PKG: the package's benchmarks, or why not.
go_bench() {
	local pkg=$1 rc=0
	if [[ ! -d $pkg ]]; then
		skipped "$pkg" "the package does not exist yet"
		return
	fi
	if ! grep -qs '^func Benchmark' "$pkg"/*_test.go; then
		skipped "$pkg" "it has no benchmarks (no func Benchmark... in $pkg/*_test.go)"
		return
	fi
	log "\$ go test -run '^\$' -bench . -benchmem ./$pkg"
	"$GO" test -run '^$' -bench . -benchmem "./$pkg" 2>&1 | sed 's/^/    /' || rc=$?
	((rc == 0)) || skipped "$pkg" "go test exited $rc (output above)"
}

iptables_part() {
	local t out rate
	for t in ip ip6tables ip6tables-restore iptables; do
		if ! command -v "$t" >/dev/null; then
			skipped iptables "$t is missing: run scripts/deps.sh"
			return
		fi
	done
	TMP=$(mktemp -d /tmp/scanwarden-bench-sets.XXXXXX)
	if ! "$GO" build -o "$TMP/fwdbench" ./scripts/fwdbench 2>"$TMP/build.err"; then
		skipped iptables "building scripts/fwdbench failed: $(tail -n 3 "$TMP/build.err")"
		return
	fi
	NS=swbs-$$-ipt
	ip netns add "$NS"
	ip -n "$NS" link set lo up

	log "iptables: bans per second through the backend (block/iptables, one Block call per ban), namespace $NS"
	if ! out=$(ip netns exec "$NS" "$TMP/fwdbench" bans -n "$IPT_BANS" 2>&1); then
		skipped "iptables bans/s" "$out"
	else
		printf '%s\n' "$out" | sed 's/^/    /'
		rate=$(sed -n 's/.* IPv6 bans in .* s: \([0-9]*\) bans\/s.*/\1/p' <<<"$out")
		if [[ $rate =~ ^[0-9]+$ ]] && ((rate > 0)); then
			log "iptables: $SET_BANS bans through the backend would take at least $((SET_BANS / rate)) s at that rate (not run; each ban is checked against a growing chain)"
		fi
	fi

	log "iptables: $SET_BANS bans loaded WITH ip6tables-restore (not through the backend), namespace $NS"
	if ! out=$(ip netns exec "$NS" "$TMP/fwdbench" load -backend iptables -n "$SET_BANS" 2>&1); then
		skipped "iptables ${SET_BANS}-ban load" "$out"
	else
		printf '%s\n' "$out" | sed 's/^/    /'
	fi
	ip netns del "$NS"
	NS=""
}

main() {
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	log "ban speed per backend (printed, not asserted)"
	if ((EUID != 0)); then
		skipped "all backends" "needs root (kernel sets and rules, in network namespaces): run make bench as root"
		return 0
	fi
	find_go
	if [[ -z $GO ]]; then
		skipped "all backends" "go is missing: run scripts/deps.sh"
		return 0
	fi
	go_bench block/nftables
	go_bench block/ipset
	iptables_part
}

main "$@"
