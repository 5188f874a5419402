#!/usr/bin/env bash
# scripts/bench.sh: the body of `make bench`.
#
# 1. The Go benchmarks of capture/, detect/ and alertfmt/ (go test -bench,
#    -benchmem, one package at a time so that they do not share the CPUs).
# 2. Replay speed (issue #14): synthetic SYN-scan captures from
#    scripts/gensyn (BENCH_SIZES: by default 1,000,000 packets from 100,
#    10,000, 100,000 and 1,000,000 sources, and 5,000,000 packets from
#    10,000), each read by three programs in turn, run after run,
#    BENCH_RUNS times: `bin/scanwarden replay --json FILE` (its alerts to
#    /dev/null), `tcpdump -r FILE -w /dev/null` (libpcap reading and
#    writing the file) and scripts/pcaploop (a C pcap_next_ex loop over
#    every packet, reading one byte of each: libpcap's floor). One table:
#    packets a second of each (its best wall time), scanwarden's ratio to
#    tcpdump and to the C loop, CPU time (user + system) per packet of
#    scanwarden and tcpdump (the least of the runs) and scanwarden's peak
#    resident set (the largest); then, pinned to one CPU (taskset -c 0),
#    on the 1,000,000-packet 10,000-source capture: scanwarden (one
#    goroutine decodes and classifies, pinned or not) and tcpdump; and
#    issue #14's targets beside the figures, each "met" or "not met":
#    >= 1.0x tcpdump at every source count, >= 0.8x the C loop at 10,000
#    sources, CPU per packet <= tcpdump's at 10,000 sources and peak RSS
#    <= 32 MiB. Each run goes through
#    scripts/pcaploop/runstat.c (fork, exec, wait4): a monotonic wall clock
#    and the process's own rusage, CPU times to the microsecond, where
#    /usr/bin/time rounds to 10 ms. Both C programs are built with cc into
#    a temporary directory. The captures are cached in BENCH_CACHE, named
#    syn-nPACKETS-sSOURCES-HASH.pcap after gensyn's source hash; those of
#    another hash (an older gensyn) are deleted.
# 3. A flood of forged sources: the 1,000,000-source capture (a source of
#    its own for every packet) and scanwarden's peak resident memory
#    (bounded by MAX_SOURCES whatever the number of sources): part 2's row
#    when it measured one, else a run of its own.
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
# 7. The live daemon's sustained probe rate under a forged flood
#    (scripts/bench-live.sh, about a minute): synflood at rising rates
#    against `scanwarden run` in namespaces of its own (swbl-*), the
#    kernel's capture drops at each, and the highest rate without any.
# Parts 4 to 7 need root and print "skipped: REASON" without it; every
# figure is printed, none asserted. A part that breaks does not stop the
# others; the exit status then says so.
#
# Environment: BENCH_PARTS (the parts to run, default "1 2 3 4 5 6 7"),
# BENCH_SIZES (part 2's captures, PACKETS:SOURCES with k and M for
# thousands and millions, default "1M:100 1M:10k 1M:100k 1M:1M 5M:10k";
# "1M:10k" for a quick run), BENCH_RUNS (runs of each program, the best
# kept, default 5), BENCH_CACHE (default scripts/.cache), BENCH_FWD_FLAGS
# (extra flags of fwdbench fwd, e.g. "-rounds 5"); and those of
# bench-sets.sh, bench-nmap.sh and bench-live.sh.
set -euo pipefail
export LC_ALL=C

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PARTS=${BENCH_PARTS:-"1 2 3 4 5 6 7"}
SIZES=${BENCH_SIZES:-"1M:100 1M:10k 1M:100k 1M:1M 5M:10k"}
RUNS=${BENCH_RUNS:-5}
CACHE=${BENCH_CACHE:-scripts/.cache}
BIN=bin/scanwarden
TMP=""
# The row the targets at 10,000 sources (and the pinned runs) read.
REF_PACKETS=1000000
REF_SOURCES=10000
# The forged flood of part 3.
FORGED=1000000
# Issue #14's targets.
TARGET_TCPDUMP=1.0
TARGET_CLOOP=0.8
TARGET_RSS_MIB=32

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

# want N: part N is among BENCH_PARTS.
want() { [[ " $PARTS " == *" $1 "* ]]; }

go_benchmarks() {
	log "\$ go test -p 1 -run '^\$' -bench . -benchmem ./capture/ ./detect/ ./alertfmt/"
	"$GO" test -p 1 -run '^$' -bench . -benchmem ./capture/ ./detect/ ./alertfmt/
}

# ---- figures ------------------------------------------------------------

# count N: N with k (thousands) or M (millions) expanded.
count() {
	local v=$1
	case $v in
	*k) v=$((10#${v%?} * 1000)) ;;
	*M) v=$((10#${v%?} * 1000000)) ;;
	*) v=$((10#$v)) ;;
	esac
	printf '%s\n' "$v"
}

# commas N: N with thousands separators.
commas() { sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|[^0-9]\)/\1,\2\3/' -e 'ta' <<<"$1"; }

fmt_s() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
# pps PACKETS NS: packets a second.
pps() { awk -v ns="$2" -v n="$1" 'BEGIN { printf "%.0f", n / (ns / 1e9) }'; }
# ratio A B: A/B, two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# per_packet US PACKETS: nanoseconds a packet.
per_packet() { awk -v us="$1" -v n="$2" 'BEGIN { printf "%.1f", us * 1000 / n }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# ge A B: A >= B (numbers).
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
met() { if ge "$@"; then echo met; else echo "not met"; fi; }

# ---- the captures and the programs --------------------------------------

# gensyn_hash: the cache names' hash of gensyn's source.
gensyn_hash() { sha256sum scripts/gensyn/main.go | cut -c1-12; }

# purge_stale: delete cached captures of another gensyn (another hash)
# and the temporary files an interrupted gensyn left (an hour old: not
# those of a gensyn at work).
purge_stale() {
	local hash f
	hash=$(gensyn_hash)
	[[ -d $CACHE ]] || return 0
	for f in "$CACHE"/syn-n*-s*-*.pcap; do
		[[ -e $f ]] || continue
		if [[ $f != */syn-n*-s*-"$hash".pcap ]]; then
			log "deleting $f (stale: another gensyn)"
			rm -f "$f"
		fi
	done
	find "$CACHE" -maxdepth 1 -name '.syn-n*-s*-*.pcap.*' -mmin +60 -print -delete | sed 's/^/bench: deleted (left by an interrupted gensyn): /'
}

# synthetic_file PACKETS SOURCES: set FILE to the cached synthetic capture,
# generating it when missing (the name carries gensyn's source hash, so a
# changed generator makes a new file).
synthetic_file() {
	local n=$1 s=$2
	FILE=$CACHE/syn-n${n}-s${s}-$(gensyn_hash).pcap
	if [[ -s $FILE ]]; then
		log "synthetic capture: $FILE (cached)"
		return
	fi
	mkdir -p "$CACHE"
	if [[ ! -x $TMP/gensyn ]]; then
		"$GO" build -o "$TMP/gensyn" ./scripts/gensyn
	fi
	"$TMP/gensyn" -o "$FILE" -n "$n" -sources "$s"
	log "synthetic capture: $FILE ($(du -h "$FILE" | cut -f1))"
}

# build_tools: the C loop and runstat, and bin/scanwarden when missing.
build_tools() {
	command -v cc >/dev/null || die "cc is missing: run scripts/deps.sh as root (package gcc)"
	command -v tcpdump >/dev/null || die "tcpdump is missing: run scripts/deps.sh as root"
	command -v taskset >/dev/null || die "taskset is missing (package util-linux)"
	cc -O2 -Wall -o "$TMP/runstat" scripts/pcaploop/runstat.c ||
		die "cc failed to build scripts/pcaploop/runstat.c"
	cc -O2 -Wall -o "$TMP/pcaploop" scripts/pcaploop/pcaploop.c -lpcap ||
		die "cc failed to build scripts/pcaploop/pcaploop.c (libpcap-dev: run scripts/deps.sh as root)"
	if [[ ! -x $BIN ]]; then
		log "$BIN is missing: go build -o $BIN ./cmd/scanwarden"
		"$GO" build -o "$BIN" ./cmd/scanwarden
	fi
}

# measure NAME CMD...: run CMD through runstat, its stdout to /dev/null
# (the C loop's, its count, to $TMP/C-loop.out) and its stderr to
# $TMP/NAME.err; set NS (wall time), CPU_US (user + system) and RSS (KiB).
# Fails when CMD fails.
measure() {
	local name=$1 rc=0 user sys out=/dev/null
	shift
	[[ $name != C-loop ]] || out=$TMP/$name.out
	"$TMP/runstat" "$TMP/rusage" "$@" >"$out" 2>"$TMP/$name.err" || rc=$?
	((rc == 0)) || die "'$*' failed (exit $rc): $(tail -n 5 "$TMP/$name.err")"
	read -r NS user sys RSS <"$TMP/rusage"
	CPU_US=$((user + sys))
}

# race PACKETS FILE NAME=CMD...: run each NAME's CMD (FILE is the last
# argument of each) in turn, RUNS times; for each NAME set BEST_NS[NAME]
# (the least wall time), BEST_CPU[NAME] (the least CPU time, µs) and
# PEAK_RSS[NAME] (the largest, KiB).
declare -A BEST_NS BEST_CPU PEAK_RSS
race() {
	local n=$1 file=$2 i spec name line
	shift 2
	BEST_NS=() BEST_CPU=() PEAK_RSS=()
	# the file into the page cache before the first run
	cat "$file" >/dev/null
	for ((i = 1; i <= RUNS; i++)); do
		line=""
		for spec in "$@"; do
			name=${spec%%=*}
			# shellcheck disable=SC2086 # the command is a word list
			measure "$name" ${spec#*=} "$file"
			line+="; $name $(fmt_s "$NS") s $(commas "$(pps "$n" "$NS")")/s, CPU $(per_packet "$CPU_US" "$n") ns/packet"
			if [[ -z ${BEST_NS[$name]:-} ]] || ((NS < ${BEST_NS[$name]})); then
				BEST_NS[$name]=$NS
			fi
			if [[ -z ${BEST_CPU[$name]:-} ]] || ((CPU_US < ${BEST_CPU[$name]})); then
				BEST_CPU[$name]=$CPU_US
			fi
			if ((RSS > ${PEAK_RSS[$name]:-0})); then
				PEAK_RSS[$name]=$RSS
			fi
		done
		log "run $i: ${line#; }"
	done
}

# ---- part 2 -------------------------------------------------------------

row() { printf '| %-27s | %9s | %28s | %32s | %23s | %18s | %17s | %24s | %21s | %19s |\n' "$@"; }

replay_table() {
	local size n s label sw td cl rsskib r_td r_cl cpu_sw cpu_td rows=() v cols
	local worst_td="" worst_td_at="" peak_rss=0 peak_rss_at="" ref="" ref_sw=""
	build_tools
	purge_stale
	log "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (other work on the machine skews every figure)"
	for size in $SIZES; do
		[[ $size =~ ^[1-9][0-9]*[kM]?:[1-9][0-9]*[kM]?$ ]] || die "BENCH_SIZES: '$size' is not PACKETS:SOURCES (e.g. 1M:10k)"
	done
	for size in $SIZES; do
		n=$(count "${size%%:*}") s=$(count "${size#*:}")
		synthetic_file "$n" "$s"
		log "$(commas "$n") packets from $(commas "$s") sources: scanwarden, tcpdump and the C loop in turn, $RUNS runs"
		race "$n" "$FILE" "scanwarden=$BIN replay --json" "tcpdump=tcpdump -Z root -w /dev/null -r" "C-loop=$TMP/pcaploop"
		log "scanwarden replay summary (stderr of its last run): $(tail -n 1 "$TMP/scanwarden.err")"
		grep -q "^$n packets" "$TMP/C-loop.out" || die "the C loop read $(cat "$TMP/C-loop.out"), not $n packets"
		sw=$(pps "$n" "${BEST_NS[scanwarden]}") td=$(pps "$n" "${BEST_NS[tcpdump]}") cl=$(pps "$n" "${BEST_NS[C-loop]}")
		r_td=$(ratio "$sw" "$td") r_cl=$(ratio "$sw" "$cl")
		cpu_sw=$(per_packet "${BEST_CPU[scanwarden]}" "$n") cpu_td=$(per_packet "${BEST_CPU[tcpdump]}" "$n")
		rsskib=${PEAK_RSS[scanwarden]}
		label="SYN scan, $(commas "$s") sources"
		rows+=("$label|$(commas "$n")|$(commas "$sw")|$(commas "$td")|$(commas "$cl")|${r_td}x|${r_cl}x|$cpu_sw|$cpu_td|$(mib "$rsskib") MiB")
		printf '%s %s %s %s %s %s %s %s %s\n' "$n" "$s" "$sw" "$td" "$cl" "$cpu_sw" "$cpu_td" "$rsskib" "${BEST_NS[scanwarden]}" >>"$TMP/rows"
		if [[ -z $worst_td ]] || ! ge "$r_td" "$worst_td"; then
			worst_td=$r_td worst_td_at="$(commas "$n") packets, $(commas "$s") sources"
		fi
		if ((rsskib > peak_rss)); then
			peak_rss=$rsskib peak_rss_at="$(commas "$n") packets, $(commas "$s") sources"
		fi
		if [[ $n == "$REF_PACKETS" && $s == "$REF_SOURCES" ]]; then
			ref="$r_cl $cpu_sw $cpu_td" ref_sw=$sw
		fi
	done

	local p_sw p_td p_ratio p_unpinned=""
	synthetic_file "$REF_PACKETS" "$REF_SOURCES"
	log "pinned to CPU 0 (taskset -c 0), $(commas "$REF_PACKETS") packets from $(commas "$REF_SOURCES") sources: scanwarden and tcpdump in turn, $RUNS runs"
	race "$REF_PACKETS" "$FILE" "scanwarden=taskset -c 0 $BIN replay --json" "tcpdump=taskset -c 0 tcpdump -Z root -w /dev/null -r"
	p_sw=$(pps "$REF_PACKETS" "${BEST_NS[scanwarden]}") p_td=$(pps "$REF_PACKETS" "${BEST_NS[tcpdump]}")
	p_ratio=$(ratio "$p_sw" "$p_td")
	[[ -z $ref_sw ]] || p_unpinned=" (unpinned: $(commas "$ref_sw") packets/s, so $(ratio "$p_sw" "$ref_sw")x of that on one CPU)"

	echo
	echo "replay speed, best of $RUNS runs each (packets/s from wall time; CPU = user + system, the least of the runs; RSS the largest):"
	echo
	row capture packets "scanwarden replay --json pps" "tcpdump -r FILE -w /dev/null pps" "C pcap_next_ex loop pps" \
		"scanwarden/tcpdump" "scanwarden/C loop" "CPU ns/packet scanwarden" "CPU ns/packet tcpdump" "scanwarden peak RSS"
	row ":---" "---:" "---:" "---:" "---:" "---:" "---:" "---:" "---:" "---:"
	for v in "${rows[@]}"; do
		IFS='|' read -r -a cols <<<"$v"
		row "${cols[@]}"
	done
	echo
	echo "(the C loop: scripts/pcaploop/pcaploop.c; scanwarden's alerts go to /dev/null)"
	printf 'pinned to one CPU (taskset -c 0), %s packets from %s sources: scanwarden %s packets/s, tcpdump %s packets/s: %sx tcpdump%s\n' \
		"$(commas "$REF_PACKETS")" "$(commas "$REF_SOURCES")" "$(commas "$p_sw")" "$(commas "$p_td")" "$p_ratio" "$p_unpinned"

	echo
	echo "issue #14's targets (from the figures above; printed, not asserted):"
	printf '  scanwarden >= %sx tcpdump at every source count: %s (lowest %sx, at %s)\n' \
		"$TARGET_TCPDUMP" "$(met "$worst_td" "$TARGET_TCPDUMP")" "$worst_td" "$worst_td_at"
	if [[ -n $ref ]]; then
		read -r r_cl cpu_sw cpu_td <<<"$ref"
		printf '  scanwarden >= %sx the C loop at %s sources: %s (%sx)\n' \
			"$TARGET_CLOOP" "$(commas "$REF_SOURCES")" "$(met "$r_cl" "$TARGET_CLOOP")" "$r_cl"
		printf '  CPU per packet <= tcpdump'\''s at %s sources: %s (scanwarden %s ns, tcpdump %s ns)\n' \
			"$(commas "$REF_SOURCES")" "$(met "$cpu_td" "$cpu_sw")" "$cpu_sw" "$cpu_td"
	else
		printf '  the targets at %s sources: not measured (BENCH_SIZES has no %s:%s)\n' \
			"$(commas "$REF_SOURCES")" "$REF_PACKETS" "$REF_SOURCES"
	fi
	printf '  peak RSS <= %d MiB: %s (highest %s MiB, at %s)\n' \
		"$TARGET_RSS_MIB" "$(met "$((TARGET_RSS_MIB * 1024))" "$peak_rss")" "$(mib "$peak_rss")" "$peak_rss_at"
}

# ---- part 3 -------------------------------------------------------------

# forged_sources: scanwarden's peak memory on a capture in which every
# packet has a source of its own (part 2's row when it measured it).
forged_sources() {
	local line ns rss
	line=$(awk -v n="$FORGED" '$1 == n && $2 == n { print; exit }' "$TMP/rows" 2>/dev/null || true)
	if [[ -n $line ]]; then
		read -r _ _ _ _ _ _ _ rss ns <<<"$line"
		log "forged flood: part 2's row of $(commas "$FORGED") packets from as many sources"
	else
		build_tools
		synthetic_file "$FORGED" "$FORGED"
		measure scanwarden "$BIN" replay --json "$FILE"
		rss=$RSS ns=$NS
		log "forged flood: $(tail -n 1 "$TMP/scanwarden.err")"
	fi
	printf 'forged flood of %s distinct sources: %s s, peak RSS %d KiB (%s MiB)\n' "$(commas "$FORGED")" "$(fmt_s "$ns")" "$rss" "$(mib "$rss")"
}

# ---- parts 4 to 7 -------------------------------------------------------

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

# one_part N: part N itself.
one_part() {
	case $1 in
	1) go_benchmarks ;;
	2) replay_table ;;
	3) forged_sources ;;
	4) bash scripts/bench-sets.sh ;;
	5) fwd_bench ;;
	6) bash scripts/bench-nmap.sh ;;
	7) bash scripts/bench-live.sh ;;
	esac
}

# part N: part N, when BENCH_PARTS has it, in a shell of its own (this
# script with --part N, in the foreground, errexit in force: a function
# called as `f || x` would run with errexit off); a part that breaks is
# recorded in BROKEN and the others still run. The parts share TMP.
BROKEN=()
part() {
	local rc=0
	want "$1" || return 0
	echo
	log "== part $1"
	BENCH_TMP=$TMP bash scripts/bench.sh --part "$1" || rc=$?
	((rc == 0)) || BROKEN+=("part $1 (exit $rc)")
}

main() {
	local p
	for p in $PARTS; do
		[[ $p =~ ^[1-7]$ ]] || die "BENCH_PARTS: '$p' is not a part (1 to 7)"
	done
	[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS='$RUNS': want a whole number >= 1"
	find_go
	if [[ ${1:-} == --part ]]; then
		TMP=${BENCH_TMP:?--part is for bench.sh itself: run it without arguments}
		one_part "$2"
		return
	fi
	TMP=$(mktemp -d /tmp/scanwarden-bench.XXXXXX)
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	: >"$TMP/rows"
	for p in 1 2 3 4 5 6 7; do
		part "$p"
	done
	if ((${#BROKEN[@]} > 0)); then
		die "these parts broke (their output is above): ${BROKEN[*]}"
	fi
}

main "$@"
