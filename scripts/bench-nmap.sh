#!/usr/bin/env bash
# scripts/bench-nmap.sh: what nmap still learns before scanwarden blocks it,
# per blocking backend (part of `make bench`). Figures are printed, never
# asserted.
#
# For each variant, in this order,
#
#   dry-run        BLOCK_BACKEND="dry-run"                   (baseline: nothing blocked)
#   iptables       BLOCK_BACKEND="iptables"  KERNEL_TRAP="0"
#   nftables       BLOCK_BACKEND="nftables"  KERNEL_TRAP="0"
#   nft-normalprio the same with CAPTURE_REALTIME="0" (the capture and
#                  blocking threads at normal priority)
#   nftables+trap  BLOCK_BACKEND="nftables"  KERNEL_TRAP="1"
#   nft+trap+atcp  the same, the daemon in advanced mode (run -atcp)
#   ipset          BLOCK_BACKEND="ipset"     KERNEL_TRAP="0"
#   ipset+trap     BLOCK_BACKEND="ipset"     KERNEL_TRAP="1"
#   ipset+trap+atcp  the same, in advanced mode
#
# (every variant's daemon gets what e2e.sh's rt_grant gives: the unit's
# RTPRIO limit of 1, or CAP_SYS_NICE where root may not raise it; every
# variant but nft-normalprio keeps CAPTURE_REALTIME="1", the default) it
# brings up a fresh namespace lab (scripts/lab.sh, namespaces "swbn-*"
# unless SW_LAB_PREFIX says otherwise), runs labsrv serve in the victim
# (HTTP :80 open, every other TCP port closed) and the daemon there exactly
# as scripts/e2e.sh does (`scanwarden run -c CONF --log-format json` as the
# user scanwarden with only CAP_NET_RAW and CAP_NET_ADMIN), with
# PortSentry's stealth-mode settings: SCAN_TRIGGER="0" and the default
# TCP_PORTS (the daemon's default -stcp -sudp modes), no hosts.deny entry
# (KILL_HOSTS_DENY="", so that block_ms is the firewall's alone) and its own
# STATE_DIR. Then, each from a fresh attacker address, it runs
#
#   nmap -n -Pn -T4 -sS --max-retries 0 --min-rate 1000 -oX FILE -e veth0 -S SRC 198.51.100.10
#   nmap -n -Pn -T4 -sF --max-retries 0 --min-rate 1000 -oX FILE -e veth0 -S SRC 198.51.100.10
#
# over nmap's default 1,000 ports, BENCH_NMAP_RUNS (3) times each, every
# run from a fresh attacker address. Both options only keep each scan to
# seconds and change nothing before the block: --max-retries 0 (one probe
# per port), since once the source is blocked every further probe is
# dropped and retries would only be waited out; --min-rate 1000, a floor
# under nmap's own rate (it sends tens of thousands of probes a second on
# the lab's bridge until the block), without which nmap reads the drops as
# congestion and takes 90 s to send the rest. (BENCH_NMAP_OPTS replaces
# them; -n -Pn -T4 stay.) A backend the daemon cannot start with prints
# "skipped: REASON".
#
# Printed per scan, and then per variant and scan type the median over
# the runs with the smallest and largest value:
#
#   classified    ports nmap classified, of the ports it reported: every
#                 state but "filtered" and "open|filtered" (so open,
#                 closed, unfiltered, closed|filtered), summed from the
#                 <extraports> and <port> elements of its -oX output.
#   answered      probes the victim's own stack answered: from tcpdump on
#                 the victim's veth0 (which sees packets before the
#                 firewall), the probes (segments from SRC to the victim
#                 with neither ACK nor RST) for whose (source port,
#                 destination port) the victim sent a TCP segment back.
#                 A FIN probe to an open port is never answered.
#   before_block  probes that reached the victim's interface before the
#                 first reply-less period, a run of REPLYLESS_RUN (10)
#                 consecutive probes, in capture order, none of them
#                 answered: the number of probes before the first probe
#                 of that run (all probes when there is no such run).
#   drop_ms       ms from the first probe to the first probe of that run,
#                 on the capture's clock ("-": no run).
#   probes, block_ms  from the daemon's "blocked" decision line for SRC:
#                 the probes it had seen and the ms from the first probe
#                 to the block being in place ("-": no such line).
#
# Needs root, nmap, tcpdump, iptables, iproute2, setpriv and Go; without
# root it prints "skipped" and exits 0. Everything is torn down on exit.
# Environment: SW_LAB_PREFIX (default swbn-), BENCH_NMAP_RUNS (1..24),
# BENCH_NMAP_OPTS,
# BENCH_NMAP_VARIANTS (names from the list above, space-separated),
# BENCH_DEBUG_COPY=DIR copies the logs, captures and nmap outputs there,
# KEEP_WORK=1 keeps the work directory of a failed run.
set -euo pipefail

export SW_LAB_PREFIX=${SW_LAB_PREFIX:-swbn-}
# shellcheck source=scripts/e2e.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e.sh"
TAG=bench-nmap

# REPLYLESS_RUN: consecutive unanswered probes that mark the block. Ten:
# the victim answers every SYN and every FIN to a closed port, and nmap
# shuffles the ports, so its one open port cannot make such a run alone.
REPLYLESS_RUN=10
# (e2e.sh's nmap_cmd already gives -n -Pn -T4.)
NMAP_OPTS=${BENCH_NMAP_OPTS:-"--max-retries 0 --min-rate 1000"}
# TCPDUMP_WAIT: seconds tcpdump may take to say it is listening.
TCPDUMP_WAIT=10
# SETTLE: seconds after nmap ends before the capture is stopped (late
# replies, SYN+ACK retransmissions).
SETTLE=0.5

# RUNS: scans of each type per variant (fresh attacker addresses; lab.sh
# has 49 per lab, and each variant has a lab of its own).
RUNS=${BENCH_NMAP_RUNS:-3}

# VARIANTS: name, BLOCK_BACKEND, KERNEL_TRAP, the daemon's mode flags
# (none: PortSentry's stealth -stcp -sudp; -atcp: advanced mode, where
# every unbound port below ADVANCED_PORTS_TCP is a trap, so that the
# kernel trap fires on the scan's first probe or nearly), CAPTURE_REALTIME
# (empty: the default, 1).
VARIANTS=(
	"dry-run|dry-run|0|"
	"iptables|iptables|0|"
	"nftables|nftables|0|"
	"nft-normalprio|nftables|0||0"
	"nftables+trap|nftables|1|"
	"nft+trap+atcp|nftables|1|-atcp"
	"ipset|ipset|0|"
	"ipset+trap|ipset|1|"
	"ipset+trap+atcp|ipset|1|-atcp"
)
# BENCH_SCANS: label, nmap scan type (IPv4, the victim's 198.51.100.10).
BENCH_SCANS=("syn|-sS" "fin|-sF")

declare -a RESULTS=() SUMMARY_KEYS=()
# Per "variant|scan": the runs' classified ports, probes before the block
# and block_ms, space-separated ("-" when unknown).
declare -A SUM_CLS=() SUM_BEFORE=() SUM_MS=()

# bench_build: the daemon and labsrv, into the work directory (not
# bin/, which others may be building at the same time).
bench_build() {
	say "building scanwarden and labsrv"
	(cd "$REPO" && go build -o "$WORK/scanwarden" ./cmd/scanwarden && go build -o "$WORK/labsrv" ./scripts/labsrv)
	SWBIN=$WORK/scanwarden
	LABSRV=$WORK/labsrv
	chmod 0755 "$SWBIN"
}

# bench_config NAME BACKEND TRAP RT: a fresh daemon directory and config
# for the variant; sets DDIR, CONF and DLOG.
bench_config() {
	local name=${1//+/-}
	DDIR=$WORK/daemon-$name
	CONF=$DDIR/scanwarden.conf
	DLOG=$WORK/logs/daemon-$name.log
	mkdir -p "$DDIR"
	cat >"$CONF" <<EOF
# scanwarden config of scripts/bench-nmap.sh, variant $1
STATE_DIR="$DDIR/state"
HISTORY_FILE="$DDIR/scanwarden.history"
BLOCKED_FILE="$DDIR/scanwarden.blocked"
IGNORE_FILE=""
KILL_HOSTS_DENY=""
BLOCK_BACKEND="$2"
KERNEL_TRAP="$3"
CAPTURE_REALTIME="$4"
SCAN_TRIGGER="0"
BLOCK_RATE_LIMIT="600"
EOF
	chown -R "$SW_USER:$(id -gn "$SW_USER")" "$DDIR"
	chmod 0700 "$DDIR"
	chmod 0600 "$CONF"
}

# bench_start_daemon: start_daemon of e2e.sh, but a daemon that does not
# come up is no error: false, with the reason in START_ERR.
bench_start_daemon() {
	DAEMON_ARGS=()
	[[ -z $MODES ]] || DAEMON_ARGS=("$MODES")
	if try_start_daemon; then
		local line
		line=$(grep -m 1 -E 'real-time priority|at normal priority' "$DLOG" || true)
		[[ -z $line ]] || say "scanwarden: $(jmsg "$line")"
		return 0
	fi
	START_ERR="$START_ERR; last log line: $(last_error)"
	return 1
}

# last_error: the daemon log's last error (its message when it is JSON).
last_error() {
	local line
	line=$(grep -E '"level":"(error|fatal|panic)"' "$DLOG" | tail -n 1 || true)
	[[ -n $line ]] || line=$(grep -v '^[[:space:]]*$' "$DLOG" | tail -n 1 || true)
	if [[ $line == '{'* ]]; then
		jmsg "$line"
	else
		printf '%s\n' "${line:-no output}"
	fi
}

# start_capture NAME SRC: tcpdump on the victim's veth0, TCP to or from
# SRC, into $WORK/logs/NAME.pcap; sets CAP_PID.
start_capture() {
	local name=$1 src=$2 i
	# -Z root: write the file in root's work directory; -U and
	# --immediate-mode: each packet written at once (otherwise the last
	# second's packets can still sit in the kernel's ring when tcpdump is
	# stopped); -s 128: headers only, so that -B, a 4 MiB ring, holds
	# thousands of packets: a full-speed scan without drops.
	start_bg "tcpdump-$name" "$NS_VIC" "$WORK/logs/$name.tcpdump" \
		tcpdump -Z root -n -U --immediate-mode -s 128 -B 4096 -i "$IFACE" -w "$WORK/logs/$name.pcap" "tcp and host $src"
	CAP_PID=$BG_PID
	for ((i = 0; i < TCPDUMP_WAIT * 20; i++)); do
		grep -q 'listening on' "$WORK/logs/$name.tcpdump" && return 0
		alive "$CAP_PID" || break
		sleep 0.05
	done
	say "warning: tcpdump did not start: $(tail -n 2 "$WORK/logs/$name.tcpdump")"
	return 1
}

# classified XML: "N/TOTAL (state counts)" from nmap's -oX output.
classified() {
	awk '
	function attr(s, name,   r) {
		if (match(s, name "=\"[^\"]*\"")) { r = substr(s, RSTART + length(name) + 2, RLENGTH - length(name) - 3); return r }
		return ""
	}
	/<extraports / { c[attr($0, "state")] += attr($0, "count") }
	/<port / && /<state state=/ { s = $0; sub(/.*<state /, "<state ", s); c[attr(s, "state")]++ }
	END {
		for (k in c) {
			total += c[k]
			if (k != "filtered" && k != "open|filtered") known += c[k]
			list = list sep c[k] " " k; sep = ", "
		}
		if (total == 0) { print "-"; exit }
		printf "%d/%d (%s)\n", known, total, list
	}' "$1"
}

# capture_figures PCAP SRC DST: "answered before_block drop_ms probes" from
# the victim's capture (see the header for the definitions).
capture_figures() {
	tcpdump -n -tt -r "$1" 2>/dev/null | awk -v src="$2" -v dst="$3" -v K="$REPLYLESS_RUN" '
	# ep: address and port of "ADDR.PORT" or "ADDR.PORT:"
	function ep(s, which,   i) {
		sub(/:$/, "", s)
		i = match(s, /\.[0-9]+$/)
		if (!i) return ""
		return which == "addr" ? substr(s, 1, i - 1) : substr(s, i + 1)
	}
	$2 == "IP" || $2 == "IP6" {
		flags = ""
		if (match($0, /Flags \[[^]]*\]/)) flags = substr($0, RSTART + 7, RLENGTH - 8)
		sa = ep($3, "addr"); da = ep($5, "addr")
		if (sa == src && da == dst) {
			if (flags ~ /[.R]/) next  # an ACK or a reset: no probe
			n++; t[n] = $1; key[n] = ep($3, "port") ":" ep($5, "port"); seen[key[n]] = 1
		} else if (sa == dst && da == src) {
			k = ep($5, "port") ":" ep($3, "port")
			if (seen[k]) ans[k] = 1
		}
	}
	END {
		if (n == 0) { print "0 0 - 0"; exit }
		run = 0; first = 0; answered = 0
		for (i = 1; i <= n; i++) {
			if (ans[key[i]]) { answered++; run = 0; continue }
			if (run++ == 0) start = i
			if (run == K && !first) first = start
		}
		if (first) printf "%d %d %.1f %d\n", answered, first - 1, (t[first] - t[1]) * 1000, n
		else printf "%d %d - %d\n", answered, n, n
	}'
}

# capture_drops NAME: tcpdump's own count of packets the kernel dropped.
capture_drops() {
	sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$WORK/logs/$1.tcpdump" | tail -n 1
}

row() { printf '%-14s %-5s %-42s %8s %12s %8s %7s %9s\n' "$@"; }

# bench_scan VARIANT LABEL ARGS N: one scan from fresh address N.
bench_scan() {
	local variant=$1 label=$2 args=$3 n=$4 name xml figs answered before drop_ms probes line dprobes="-" ms="-" drops cls
	name=${variant//+/-}-$label
	scan_addrs "$n" "$args"
	xml=$WORK/logs/$name.xml
	local capturing=0
	start_capture "$name" "$SRC" && capturing=1
	nmap_cmd "$args $NMAP_OPTS" "$SRC" "$DST" -oX "$xml"
	run_wait_to "$WORK/logs/$name.nmap" timeout 300 ip netns exec "$NS_ATT" "${NMAP[@]}" ||
		say "warning: ${NMAP[*]} failed: $(tail -n 2 "$WORK/logs/$name.nmap")"
	pause "$SETTLE"
	wait_blocked "$SRC" "$BLOCK_WAIT" || true
	if ((capturing)); then
		stop_pid "$CAP_PID" 5 || true
		figs=$(capture_figures "$WORK/logs/$name.pcap" "$SRC" "$DST")
		drops=$(capture_drops "$name")
		[[ -z $drops || $drops == 0 ]] || say "warning: tcpdump dropped $drops packets of the $variant $label scan: its figures are low"
	else
		figs="- - - -"
	fi
	read -r answered before drop_ms probes <<<"$figs"
	line=$(blocked_lines "$SRC" | head -n 1)
	if [[ -n $line ]]; then
		dprobes=$(jnum "$line" probes)
		ms=$(jnum "$line" block_ms)
		[[ $ms =~ ^[0-9.eE+-]+$ ]] && ms=$(printf '%.1f' "$ms")
	fi
	cls=$(classified "$xml" 2>/dev/null || echo -)
	RESULTS+=("$(row "$variant" "$label" "$cls" "$answered/$probes" "$before" "$drop_ms" "${dprobes:--}" "${ms:--}")")
	printf '%s\n' "${RESULTS[-1]}"
	local key="$variant|$label"
	[[ -v "SUM_CLS[$key]" ]] || SUMMARY_KEYS+=("$key")
	SUM_CLS[$key]+="${cls%%/*} "
	SUM_BEFORE[$key]+="${before:--} "
	SUM_MS[$key]+="${ms:--} "
}

# bench_variant I: lab, server and daemon for VARIANTS[I], its scans, and
# everything stopped and removed again.
bench_variant() {
	local i=$1 name backend trap rt j r label args
	IFS='|' read -r name backend trap MODES rt <<<"${VARIANTS[$i]}"
	rt=${rt:-1}
	say "variant $name: BLOCK_BACKEND=\"$backend\" KERNEL_TRAP=\"$trap\" CAPTURE_REALTIME=\"$rt\" ${MODES:-(stealth mode)}"
	LAB_UP=1
	bash "$LAB" up >"$WORK/logs/lab.log" 2>&1 || die "lab.sh up failed: $(cat "$WORK/logs/lab.log")"
	for ((j = 1; j <= RUNS * ${#BENCH_SCANS[@]}; j++)); do
		bash "$LAB" attacker-addr "$j" >/dev/null
	done
	start_bg srv-victim "$NS_VIC" "$WORK/logs/srv-victim.log" "$LABSRV" serve \
		-http "$VICTIM4:80,[$VICTIM6]:80" -udp "$VICTIM4:53,[$VICTIM6]:53"
	local srv=$BG_PID
	wait_for_servers
	bench_config "$name" "$backend" "$trap" "$rt"
	if ! bench_start_daemon; then
		RESULTS+=("$(printf '%-14s skipped: %s' "$name" "$START_ERR")")
		printf '%s\n' "${RESULTS[-1]}"
		SUMMARY_KEYS+=("$name|skipped: $START_ERR")
	else
		pause 1
		for ((r = 0; r < RUNS; r++)); do
			for j in "${!BENCH_SCANS[@]}"; do
				IFS='|' read -r label args <<<"${BENCH_SCANS[$j]}"
				bench_scan "$name" "$label" "$args" "$((r * ${#BENCH_SCANS[@]} + j + 1))"
			done
		done
		stop_daemon
		((DAEMON_RC == 0)) || say "warning: scanwarden exited with status $DAEMON_RC on SIGTERM"
	fi
	stop_pid "$srv" 5 || true
	bash "$LAB" down >>"$WORK/logs/lab.log" 2>&1 || say "warning: lab.sh down failed: $(tail -n 3 "$WORK/logs/lab.log")"
	LAB_UP=0
}

bench_main() {
	local t i name v want started=$SECONDS
	if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((RUNS < 1 || RUNS * ${#BENCH_SCANS[@]} > 49)); then
		die "BENCH_NMAP_RUNS=$RUNS: want 1 to $((49 / ${#BENCH_SCANS[@]})) (lab.sh has 49 fresh attacker addresses)"
	fi
	if ((EUID != 0)); then
		say "skipped: needs root (network namespaces, firewall, a system user): run make bench as root"
		return 0
	fi
	if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
		PATH=$PATH:/usr/local/go/bin
	fi
	for t in go ip nmap tcpdump iptables ip6tables setpriv timeout; do
		if ! command -v "$t" >/dev/null; then
			say "skipped: $t is missing: run scripts/deps.sh as root"
			return 0
		fi
	done
	preflight
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	WORK=$(mktemp -d /tmp/scanwarden-bench-nmap.XXXXXX)
	chmod 0711 "$WORK"
	mkdir -m 0700 "$WORK/logs"
	bench_build
	ensure_user
	prepare_xtables_lock

	say "nmap's default 1,000 ports against the daemon, per backend: nmap -n -Pn -T4 $NMAP_OPTS -sS|-sF"
	say "(classified: ports nmap could classify; answered: probes the victim answered/probes that reached it;"
	say " before_block: probes before the first run of $REPLYLESS_RUN unanswered ones; see the script's header)"
	row variant scan "classified (states)" answered before_block drop_ms probes block_ms
	for i in "${!VARIANTS[@]}"; do
		name=${VARIANTS[$i]%%|*}
		if [[ -n ${BENCH_NMAP_VARIANTS:-} ]]; then
			want=0
			for v in $BENCH_NMAP_VARIANTS; do [[ $v == "$name" ]] && want=1; done
			((want)) || continue
		fi
		bench_variant "$i"
	done

	[[ -z ${BENCH_DEBUG_COPY:-} ]] || cp -r "$WORK/logs" "$BENCH_DEBUG_COPY"
	say "every scan ($((SECONDS - started)) s):"
	row variant scan "classified (states)" answered before_block drop_ms probes block_ms
	for t in "${RESULTS[@]}"; do
		printf '%s\n' "$t"
	done
	summary
}

# med_range LIST: "median [min-max]" of the numbers in LIST ("-" when none).
med_range() {
	tr ' ' '\n' <<<"$1" | awk '/^[0-9.]+$/ { v[n++] = $1 + 0 }
	END {
		if (n == 0) { print "-"; exit }
		for (i = 1; i < n; i++) for (j = i; j > 0 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
		m = n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
		printf "%g [%g-%g]\n", m, v[0], v[n - 1]
	}'
}

# summary: per variant and scan type, the median and range over the runs.
summary() {
	local key variant label
	say "summary over $RUNS run(s) per scan: median [min-max]"
	printf '%-14s %-5s %-22s %-22s %-22s\n' variant scan "classified (of 1000)" before_block block_ms
	for key in "${SUMMARY_KEYS[@]}"; do
		IFS='|' read -r variant label <<<"$key"
		if [[ $label == skipped:* ]]; then
			printf '%-14s %s\n' "$variant" "$label"
			continue
		fi
		printf '%-14s %-5s %-22s %-22s %-22s\n' "$variant" "$label" "$(med_range "${SUM_CLS[$key]}")" \
			"$(med_range "${SUM_BEFORE[$key]}")" "$(med_range "${SUM_MS[$key]}")"
	done
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	bench_main "$@"
fi
