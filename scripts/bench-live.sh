#!/usr/bin/env bash
# scripts/bench-live.sh: make bench, part 7: the live daemon's sustained
# probe rate under a flood of forged sources, the highest rate at which the
# kernel dropped none of the packets the daemon's capture was to get.
# Figures are printed, never asserted.
#
# A lab of its own: two network namespaces, swbl-PID-attacker
# (fd00:77::66/64) and swbl-PID-victim (fd00:77::10/64), joined by one
# veth pair and nothing else: no other address, no route out, no link to
# the host's namespace. No bridge: the kernel runs a veth's receive path on
# the sending CPU, so each hop would lower the rate the lab can offer. The
# victim reaches the forged sources' /96 through the attacker (a router's
# part, as in flood.sh), which drops whatever it gets for them.
#
# For each rate of BENCH_LIVE_RATES in turn, until one drops:
#   - `bin/scanwarden run` starts in the victim (as root, at real-time
#     priority as the unit allows it; the shipped defaults but for
#     BLOCK_BACKEND, BENCH_LIVE_BACKEND, and no hosts.deny, its files in a
#     temporary directory; BLOCK_RATE_LIMIT bounds what it blocks);
#   - scripts/synflood in the attacker sends RATE SYNs a second for
#     BENCH_LIVE_SECONDS, each from a forged source of its own
#     (fd00:77::1:0:1 onwards, fd00:77::1:0:0/96) to a random port of
#     fd00:77::10, from pre-built frames (sendmmsg on an AF_PACKET socket);
#   - the daemon is stopped with SIGTERM: its capture's kernel counters are
#     only logged at exit and every 5 minutes (the "capture on IFACE" line:
#     received, dropped, if_dropped; there is no signal or command that
#     prints them), so each step runs a daemon of its own.
# One row per step: the rate offered, the rate synflood achieved, the
# packets that reached the victim's veth0, those the daemon's capture got
# (libpcap's received less dropped), the kernel's drops (libpcap's
# ps_drop: the capture ring was full, and ps_ifdrop) and the daemon's CPU
# (user + system, of one CPU, while the flood ran) and its capture
# thread's priority (CAPTURE_REALTIME: it leaves real time, and logs it,
# while it uses more than half a CPU). It stops at the first
# step with drops, or after two steps in a row where synflood achieved
# less than 90% of the rate offered (the lab's ceiling: the sending CPU
# also runs the victim's receive path; one such step may be a passing load
# on the machine), and prints the sustained probe rate: the highest rate
# achieved that lost nothing.
#
# BENCH_LIVE_ANSWER=0 (the default): the victim's raw PREROUTING drops the
# flood, after the capture, which sees every packet first: a host whose
# firewall leaves probes unanswered. The lab then sends up to some
# 230,000-380,000 SYNs a second on 2 CPUs, about where the daemon starts
# to lose packets there. BENCH_LIVE_ANSWER=1: the victim's TCP answers
# every SYN with a RST, which the capture gets as well (two packets a
# probe), as a host without a firewall; the lab itself then tops out lower
# (some 100,000-130,000 SYNs a second on 2 CPUs with nothing else running).
#
# A deficit that the capture ring (capture.DefaultBufferSize) absorbs for
# a whole step goes unseen: a longer BENCH_LIVE_SECONDS gives a finer
# figure. The lab's cost and the daemon's share the machine's CPUs, and
# other work on it lowers both: the figure is this machine's, at that
# moment (the load average is printed). A rate synflood cannot reach runs
# it flat out, its CPU busy without a pause, and the kernel may then drop
# at a lower achieved rate than a paced step lost nothing at: the table
# gives both rates.
#
# Needs root (network namespaces), ip, ip6tables (BENCH_LIVE_ANSWER=0) and
# Go; without root it prints "skipped: REASON". Everything it creates is
# removed on exit, also on failure; it stops only processes it started, by
# PID.
#
# Environment: BENCH_LIVE_RATES (SYNs a second, ascending; default
# "50000 100000 150000 200000 250000 300000 400000 600000 800000"),
# BENCH_LIVE_SECONDS (per step, default 4), BENCH_LIVE_ANSWER (0 or 1,
# default 0), BENCH_LIVE_BACKEND (default dry-run), BENCH_LIVE_KEEP=1
# (keep the work directory: the config, each step's daemon log and
# synflood's output).
set -euo pipefail
export LC_ALL=C

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

RATES=${BENCH_LIVE_RATES:-"50000 100000 150000 200000 250000 300000 400000 600000 800000"}
SECS=${BENCH_LIVE_SECONDS:-4}
ANSWER=${BENCH_LIVE_ANSWER:-0}
BACKEND=${BENCH_LIVE_BACKEND:-dry-run}

PREFIX=swbl-
NS_ATT=${PREFIX}$$-attacker
NS_VIC=${PREFIX}$$-victim
IFACE=veth0
ATTACKER6=fd00:77::66
VICTIM6=fd00:77::10
FORGED_BASE=fd00:77::1:0:0
FORGED_NET=fd00:77::1:0:0/96
# How long the daemon may take to say it is listening.
START_TIMEOUT=15
# How long synflood may run past its BENCH_LIVE_SECONDS (it is stopped
# then: at a rate it cannot reach it would send its packets for longer).
FLOOD_GRACE=0.5
# After the flood, before the daemon is stopped: it reads what the ring
# still holds (drops were counted when they happened).
DRAIN=0.5
# A step whose synflood achieved less than this share of the rate offered
# is the lab's ceiling.
CEILING=0.9

WORK=""
DPID="" # the daemon
FPID="" # synflood
NS_MADE=0

log() { printf 'bench-live: %s\n' "$*"; }
die() {
	printf 'bench-live: error: %s\n' "$*" >&2
	exit 1
}

# ---- processes ----------------------------------------------------------

# alive PID: PID exists and is not a zombie.
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

# stop_pid PID SECONDS: TERM, wait up to SECONDS, then KILL; reap it (a
# child of this shell) and return its exit status.
stop_pid() {
	local pid=$1 secs=$2 i rc=0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 20; i++)); do
		alive "$pid" || break
		sleep 0.05
	done
	if alive "$pid"; then
		log "PID $pid ignored SIGTERM for ${secs}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $FPID ]]; then
		stop_pid "$FPID" 5 || true
	fi
	if [[ -n $DPID ]]; then
		stop_pid "$DPID" 15 || true
	fi
	if ((NS_MADE)); then
		del_ns "$NS_ATT"
		del_ns "$NS_VIC"
	fi
	if [[ -n $WORK && ${BENCH_LIVE_KEEP:-0} == 1 ]]; then
		log "work directory kept (BENCH_LIVE_KEEP=1): $WORK"
	elif [[ -n $WORK ]]; then
		rm -rf "$WORK"
	fi
	exit "$rc"
}

# ---- the lab ------------------------------------------------------------

# del_ns NS: delete NS when it exists (its processes, if any, are not ours
# to end: say so).
del_ns() {
	local pids
	[[ -e /run/netns/$1 ]] || return 0
	pids=$(ip netns pids "$1" 2>/dev/null | tr '\n' ' ')
	[[ -z ${pids// /} ]] || log "warning: processes remain in $1: ${pids}(not ended)"
	ip netns del "$1" || log "warning: could not delete namespace $1"
}

# stale_ns: delete the namespaces of earlier runs that were killed before
# their clean-up (their PID gone, no process left in them).
stale_ns() {
	local f ns pid
	for f in /run/netns/"$PREFIX"*-attacker /run/netns/"$PREFIX"*-victim; do
		[[ -e $f ]] || continue
		ns=${f#/run/netns/}
		pid=${ns#"$PREFIX"}
		pid=${pid%%-*}
		[[ $pid =~ ^[0-9]+$ ]] || continue
		if ! alive "$pid" && [[ -z $(ip netns pids "$ns" 2>/dev/null) ]]; then
			log "deleting $ns, left by an earlier run (PID $pid)"
			ip netns del "$ns" || true
		fi
	done
}

# in_ns NS CMD...
in_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

# lab_up: the two namespaces and their veth pair, IPv6 only, with no
# duplicate address detection, link-local address or router solicitation
# (the lab's addresses are the only sources on the wire but for the flood).
lab_up() {
	local ns
	NS_MADE=1
	for ns in "$NS_ATT" "$NS_VIC"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		in_ns "$ns" sysctl -q -w net.ipv4.conf.all.forwarding=0 net.ipv6.conf.all.forwarding=0 \
			net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
			net.ipv6.conf.default.addr_gen_mode=1 \
			net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0 \
			net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 >/dev/null
	done
	ip -n "$NS_ATT" link add "$IFACE" type veth peer name "$IFACE" netns "$NS_VIC"
	for ns in "$NS_ATT" "$NS_VIC"; do
		in_ns "$ns" sysctl -q -w "net.ipv6.conf.$IFACE.addr_gen_mode=1" "net.ipv6.conf.$IFACE.accept_dad=0" \
			"net.ipv6.conf.$IFACE.router_solicitations=0" >/dev/null
	done
	ip -n "$NS_ATT" addr add "$ATTACKER6/64" dev "$IFACE" nodad
	ip -n "$NS_VIC" addr add "$VICTIM6/64" dev "$IFACE" nodad
	ip -n "$NS_ATT" link set "$IFACE" up
	ip -n "$NS_VIC" link set "$IFACE" up
	ip -n "$NS_VIC" -6 route add "$FORGED_NET" via "$ATTACKER6" dev "$IFACE"
	if [[ $ANSWER == 0 ]]; then
		in_ns "$NS_VIC" ip6tables -t raw -A PREROUTING -s "$FORGED_NET" -j DROP
	fi
	DMAC=$(in_ns "$NS_VIC" cat "/sys/class/net/$IFACE/address")
}

# rx_packets: packets the victim's veth0 received so far.
rx_packets() { in_ns "$NS_VIC" cat "/sys/class/net/$IFACE/statistics/rx_packets"; }

# ---- the daemon ---------------------------------------------------------

write_config() {
	CONF=$WORK/scanwarden.conf
	cat >"$CONF" <<EOF
# scanwarden config of scripts/bench-live.sh: the defaults but for these
STATE_DIR="$WORK/state"
HOSTS_DENY_FILE="$WORK/hosts.deny"
HISTORY_FILE="$WORK/scanwarden.history"
BLOCKED_FILE="$WORK/scanwarden.blocked"
IGNORE_FILE=""
KILL_HOSTS_DENY=""
BLOCK_BACKEND="$BACKEND"
EOF
	"$SWBIN" check-config -c "$CONF" >"$WORK/check-config.out" 2>&1 ||
		die "scanwarden check-config rejects the bench's config: $(tail -n 3 "$WORK/check-config.out")"
}

# start_daemon RATE: scanwarden run in the victim, each step with a fresh
# state and a log of its own (DLOG); sets DPID once it says it is
# listening.
start_daemon() {
	local i rc
	rm -rf "$WORK/state"
	DLOG=$WORK/daemon-$1.log
	# (made here: the daemon's shell opens it only once it runs)
	: >"$DLOG"
	# (ip netns exec and env exec what follows: $! is the daemon)
	ip netns exec "$NS_VIC" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
		"$SWBIN" run -c "$CONF" --log-format json </dev/null >"$WORK/daemon.out" 2>"$DLOG" &
	DPID=$!
	for ((i = 0; i < START_TIMEOUT * 20; i++)); do
		if grep -qF '"msg":"adminalert: scanwarden is now active and listening."' "$DLOG"; then
			return 0
		fi
		if ! alive "$DPID"; then
			rc=0
			wait "$DPID" || rc=$?
			DPID=""
			die "scanwarden exited (status $rc) before it was listening: $(tail -n 3 "$DLOG" | tr '\n' ' ')"
		fi
		sleep 0.05
	done
	die "scanwarden did not say it was listening within ${START_TIMEOUT}s: $(tail -n 3 "$DLOG" | tr '\n' ' ')"
}

# cpu_ticks PID: user + system CPU of PID so far, in clock ticks.
cpu_ticks() {
	local stat
	stat=$(cat "/proc/$1/stat")
	stat=${stat##*) }
	awk '{ print $12 + $13 }' <<<"$stat"
}

# jnum LINE KEY: a number of a JSON log line.
jnum() { sed -n 's/.*"'"$2"'":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p' <<<"$1"; }

# field LINE KEY: KEY=VALUE of synflood's summary line.
field() { sed -n 's/.* '"$2"'=\([^ ]*\).*/\1/p' <<<" $1"; }

# ---- one step -----------------------------------------------------------

# step RATE: flood the daemon at RATE SYNs a second for SECS seconds; sets
# SENT, ACHIEVED (a second), RX (at the victim), CAPTURED, DROPPED,
# IFDROPPED, CPU (% of one CPU during the flood), PRIO (the capture
# thread's priority: real-time, or normal from the load it said).
step() {
	local rate=$1 n rx0 rx1 cpu0 cpu1 i limit rc=0 summary stats elapsed v
	n=$(awk -v r="$rate" -v s="$SECS" 'BEGIN { printf "%d", r * s }')
	start_daemon "$rate"
	sleep 0.3 # its start-up done (first reads of bound ports, the trap's absence)
	rx0=$(rx_packets)
	cpu0=$(cpu_ticks "$DPID")
	ip netns exec "$NS_ATT" "$SYNFLOOD" -i "$IFACE" -dmac "$DMAC" -dst "$VICTIM6" -src-base "$FORGED_BASE" \
		-sources "$n" -n "$n" -rate "$rate" </dev/null >"$WORK/synflood-$rate.log" 2>&1 &
	FPID=$!
	limit=$(awk -v s="$SECS" -v g="$FLOOD_GRACE" 'BEGIN { printf "%d", (s + g) * 20 }')
	for ((i = 0; i < limit; i++)); do
		alive "$FPID" || break
		sleep 0.05
	done
	# (still running: it could not reach the rate; TERM makes it stop and
	# print what it did)
	stop_pid "$FPID" 5 || rc=$?
	FPID=""
	summary=$(grep '^synflood: sent=' "$WORK/synflood-$rate.log" || true)
	if [[ -z $summary ]] || ((rc != 0 && rc != 143)); then
		die "synflood failed (exit $rc): $(tail -n 3 "$WORK/synflood-$rate.log" | tr '\n' ' ')"
	fi
	cpu1=$(cpu_ticks "$DPID")
	sleep "$DRAIN"
	rx1=$(rx_packets)
	rc=0
	stop_pid "$DPID" 15 || rc=$?
	DPID=""
	((rc == 0)) || die "scanwarden exited with status $rc on SIGTERM: $(tail -n 3 "$DLOG" | tr '\n' ' ')"
	stats=$(grep -F '"msg":"capture on ' "$DLOG" | tail -n 1 || true)
	[[ -n $stats ]] || die "scanwarden logged no capture counters at exit (no \"capture on ...\" line): $(tail -n 3 "$DLOG" | tr '\n' ' ')"
	SENT=$(field "$summary" sent)
	ACHIEVED=$(field "$summary" pps)
	elapsed=$(field "$summary" elapsed)
	RX=$((rx1 - rx0))
	DROPPED=$(jnum "$stats" dropped)
	IFDROPPED=$(jnum "$stats" if_dropped)
	CAPTURED=$(($(jnum "$stats" received) - DROPPED))
	CPU=$(awk -v t="$((cpu1 - cpu0))" -v hz="$(getconf CLK_TCK)" -v e="$elapsed" \
		'BEGIN { printf "%.0f", (e > 0 ? 100 * t / hz / e : 0) }')
	# CAPTURE_REALTIME: the capture thread leaves real-time priority
	# while it uses more than half a CPU, and says so
	PRIO=real-time
	v=$(sed -n 's/.*"msg":"adminalert: the capture on [^ ]* used \([0-9]*%\) of a CPU: at normal priority.*/\1/p' "$DLOG" | head -n 1)
	[[ -z $v ]] || PRIO="normal (used $v)"
	! grep -qF 'real-time priority refused' "$DLOG" || PRIO="normal (refused)"
	if grep -qF '"level":"error"' "$DLOG"; then
		log "the daemon logged errors at $rate/s: $(grep -F '"level":"error"' "$DLOG" | head -n 3 | tr '\n' ' ')"
	fi
}

# ---- output -------------------------------------------------------------

# commas N: N with thousands separators.
commas() { sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|[^0-9]\)/\1,\2\3/' -e 'ta' <<<"$1"; }

row() { printf '| %15s | %15s | %11s | %11s | %12s | %10s | %-17s | %-31s |\n' "$@"; }

main() {
	local r v cols rows=() best="" best_offered="" first_drop="" first_drop_achieved="" short=0 verdict ans
	if ((EUID != 0)); then
		log "skipped: needs root (network namespaces, a capture in them)"
		return 0
	fi
	for v in ip sysctl getconf; do
		command -v "$v" >/dev/null || die "$v is missing: run scripts/deps.sh as root"
	done
	if [[ $ANSWER == 0 ]]; then
		command -v ip6tables >/dev/null || die "ip6tables is missing: run scripts/deps.sh as root"
	elif [[ $ANSWER != 1 ]]; then
		die "BENCH_LIVE_ANSWER='$ANSWER': want 0 or 1"
	fi
	if ! [[ $SECS =~ ^[0-9]+$ ]] || ((SECS < 1 || SECS > 60)); then
		die "BENCH_LIVE_SECONDS='$SECS': want 1 to 60"
	fi
	for r in $RATES; do
		[[ $r =~ ^[1-9][0-9]*$ ]] || die "BENCH_LIVE_RATES: '$r' is not a rate (SYNs a second)"
	done
	[[ -n ${RATES// /} ]] || die "BENCH_LIVE_RATES is empty"
	if ! command -v go >/dev/null; then
		[[ -x /usr/local/go/bin/go ]] || die "go is missing: run scripts/deps.sh as root"
		PATH=$PATH:/usr/local/go/bin
	fi

	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	WORK=$(mktemp -d /tmp/scanwarden-bench-live.XXXXXX)
	SWBIN=$REPO/bin/scanwarden
	if [[ ! -x $SWBIN ]]; then
		log "$SWBIN is missing: go build -o bin/scanwarden ./cmd/scanwarden"
		go build -o "$SWBIN" ./cmd/scanwarden
	fi
	go build -o "$WORK/synflood" ./scripts/synflood
	SYNFLOOD=$WORK/synflood
	write_config
	stale_ns
	lab_up
	if [[ $ANSWER == 0 ]]; then
		ans="the victim's raw PREROUTING drops the flood after the capture (no answers)"
	else
		ans="the victim's TCP answers each SYN with a RST (captured too: two packets a probe)"
	fi
	log "lab: $NS_ATT ($ATTACKER6) -> veth pair -> $NS_VIC ($VICTIM6); $ans"
	log "daemon: $("$SWBIN" version 2>/dev/null | head -n 1), BLOCK_BACKEND=$BACKEND, the defaults otherwise"
	log "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (other work on the machine lowers every figure)"
	log "flood: one forged source per SYN ($FORGED_BASE + 1, ...), ${SECS}s a step, a daemon started afresh for each (it logs its capture counters at exit)"

	for r in $RATES; do
		step "$r"
		if ((DROPPED > 0 || IFDROPPED > 0)); then
			verdict="DROPS ($(awk -v d="$((DROPPED + IFDROPPED))" -v c="$CAPTURED" 'BEGIN { printf "%.2f", 100 * d / (c + d) }')% of the capture's)"
			first_drop=$r first_drop_achieved=$ACHIEVED
		elif awk -v a="$ACHIEVED" -v r="$r" -v c="$CEILING" 'BEGIN { exit !(a < c * r) }'; then
			verdict="no drops; the lab fell short"
			short=$((short + 1))
		else
			verdict="no drops"
			short=0
		fi
		if [[ -z $first_drop ]] && { [[ -z $best ]] || ((ACHIEVED > best)); }; then
			best=$ACHIEVED best_offered=$r
		fi
		log "$r/s offered: synflood sent $SENT at $ACHIEVED/s; the victim got $RX, the daemon's capture $CAPTURED, the kernel dropped $DROPPED (interface: $IFDROPPED); daemon CPU ${CPU}%, capture at $PRIO priority: $verdict"
		rows+=("$(commas "$r")|$(commas "$ACHIEVED")|$(commas "$RX")|$(commas "$CAPTURED")|$(commas "$((DROPPED + IFDROPPED))")|${CPU}%|$PRIO|$verdict")
		# (one step short of its rate may be a passing load on the
		# machine; two in a row are the lab's ceiling)
		if [[ -n $first_drop ]] || ((short >= 2)); then
			break
		fi
	done

	echo
	echo "the live daemon under a forged flood (one source per SYN, ${SECS}s a step; $ans):"
	echo
	row "offered SYNs/s" "achieved SYNs/s" "victim rx" "captured" "kernel drops" "daemon CPU" "capture priority" "verdict"
	row "---:" "---:" "---:" "---:" "---:" "---:" ":---" ":---"
	for v in "${rows[@]}"; do
		IFS='|' read -r -a cols <<<"$v"
		row "${cols[@]}"
	done
	echo
	if [[ -n $first_drop ]]; then
		if [[ -n $best ]]; then
			echo "sustained probe rate (the highest rate achieved with no kernel drop): $(commas "$best") SYNs/s (offered $(commas "$best_offered")); the kernel dropped at the next step, $(commas "$first_drop") offered ($(commas "$first_drop_achieved") achieved)"
		else
			echo "sustained probe rate: below $(commas "$first_drop_achieved") SYNs/s: the kernel dropped already at the lowest rate of BENCH_LIVE_RATES, $(commas "$first_drop") offered"
		fi
	elif ((short >= 2)); then
		echo "sustained probe rate: at least $(commas "$best") SYNs/s, the most this lab could send here (its last two steps fell short of their rate), and the kernel dropped nothing: the daemon's own limit lies above what this lab can offer on this machine"
	else
		echo "sustained probe rate: at least $(commas "$best") SYNs/s, the highest achieved of BENCH_LIVE_RATES (none made the kernel drop)"
	fi
}

main "$@"
