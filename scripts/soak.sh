#!/usr/bin/env bash
# scripts/soak.sh: make soak: the daemon for SOAK_SECONDS (default 600)
# under everything at once, printing its figures over time and failing
# when it stops doing its job or grows without bound. CI runs a shortened
# one (90 s).
#
# It reuses scripts/flood.sh (which reuses scripts/e2e.sh): its own lab
# (scripts/lab.sh, namespaces "swsoak-*" unless SW_LAB_PREFIX says
# otherwise), labsrv serving HTTP and UDP on the victim, the benign client
# (HTTP and UDP, IPv4 and IPv6, every 300 ms), and `scanwarden run` in the
# victim as the unprivileged user "scanwarden" with only CAP_NET_RAW and
# CAP_NET_ADMIN (setpriv), with flood.sh's config (e2e's, with the daemon's
# own BLOCK_RATE_LIMIT) plus RESOLVE_HOST="1". Throughout the run:
#
# - a resolver that never answers: /etc/netns/<victim ns>/resolv.conf
#   (which `ip netns exec` bind-mounts over /etc/resolv.conf) names
#   203.0.113.53, which the victim reaches through the attacker namespace,
#   where an nftables rule drops (and counts) everything sent to it. The
#   set-up checks that a reverse lookup in the victim then hangs, and that
#   the daemon sees that resolv.conf. The directory is removed at the end.
# - a forged-source flood: scripts/synflood, as flood.sh runs it, SOAK_RATE
#   SYNs a second (default 20000) from forged IPv6 sources in
#   fd00:77::1:0:0/96, one SYN each, to random ports of the victim.
# - a real scanner every SOAK_SCAN_EVERY seconds (default 60, in the middle
#   of each interval), each from a fresh attacker address, IPv4 and IPv6 in
#   turn: nmap -sS --top-ports SOAK_SCAN_PORTS (default 300). Each must be
#   banned by the backend (polled from nmap's start, an upper bound of the
#   time from its first probe) within 15 s, and the daemon's own block_ms
#   (first probe to rule) must be under 15 s too; then flood.sh's
#   check_blocked: its "blocked" line, one ban, its state entry, and a new
#   connection from it failing.
# - SOAK_RELOADS SIGHUPs (default 1000), evenly spread over the run.
# - every SOAK_UNBLOCK_EVERY-th scanner (default 2), `scanwarden unblock`
#   (as root) of the scanner before it, checked as e2e.sh does (no ban,
#   hosts.deny or state entry left, it connects again); at the end each
#   must still be unblocked, whatever the reloads since.
#
# Every SOAK_SAMPLE seconds (default 10) one line of figures: elapsed
# seconds, the daemon's RSS (VmRSS, KiB), open fds (/proc/PID/fd), threads
# (/proc/PID/status), the kernel's capture drops as the daemon last
# reported them (its statistics line comes every 5 minutes and at exit:
# "-" until the first), its "blocked" and "not blocked" decision lines so
# far, the bans in its state (scanwarden list --json), SIGHUPs sent, and
# its CPU seconds. At the end: a summary table.
#
# The exit status is non-zero (each cause printed as FAIL) when: a real
# scanner was not banned, or banned more than 15 s after nmap started (or
# the daemon's block_ms says more than 15 s), or its block was incomplete;
# an unblock failed or did not last; the benign client had a request fail,
# or a lab host was blocked or reported; the daemon died, logged an error,
# did not stop cleanly on SIGTERM, or its output holds "DATA RACE"
# (SOAK_RACE=1 runs a -race build); the flood ended early; more forged
# sources were blocked than BLOCK_RATE_LIMIT allows (flood.sh's bound:
# the limit once a minute of flood, reloads or not); or the growth rule
# broke. The growth rule, over the samples taken SOAK_WARMUP seconds
# (default 40: past the start-up's one-off allocations)
# or more into the run, comparing the mean of their last third with the
# mean of their first third: open fds up by more than 8, threads up by
# more than 8, or RSS up by more than 50 % is a failure (with fewer than
# three such samples growth is not judged, and that is said).
#
# Needs root, nmap, iptables, iproute2, nft, setpriv (util-linux), getent
# and Go. Environment: SOAK_SECONDS, SOAK_RATE, SOAK_SCAN_EVERY,
# SOAK_SCAN_PORTS, SOAK_RELOADS, SOAK_UNBLOCK_EVERY (0: never),
# SOAK_SAMPLE, SOAK_WARMUP, SOAK_RACE, SOAK_BACKEND (iptables, nftables
# or ipset; default iptables), SOAK_RATE_LIMIT (BLOCK_RATE_LIMIT; default
# the daemon's), SW_LAB_PREFIX (default swsoak-), KEEP_WORK=1 (keep the
# logs of a failed run). Ctrl-C tears everything down.
set -euo pipefail

export SW_LAB_PREFIX=${SW_LAB_PREFIX:-swsoak-}
# shellcheck source=scripts/flood.sh
source "$(dirname "${BASH_SOURCE[0]}")/flood.sh"
TAG=soak

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_RATE=${SOAK_RATE:-20000}
SOAK_SCAN_EVERY=${SOAK_SCAN_EVERY:-60}
SOAK_SCAN_PORTS=${SOAK_SCAN_PORTS:-300}
SOAK_RELOADS=${SOAK_RELOADS:-1000}
SOAK_UNBLOCK_EVERY=${SOAK_UNBLOCK_EVERY:-2}
SOAK_SAMPLE=${SOAK_SAMPLE:-10}
SOAK_WARMUP=${SOAK_WARMUP:-40}
SOAK_RACE=${SOAK_RACE:-0}
SOAK_BACKEND=${SOAK_BACKEND:-iptables}

# A real scanner must be banned within BLOCK_LIMIT seconds of its first
# probe; the backend is watched for BLOCK_GIVEUP seconds, so that a late
# block is told from none.
BLOCK_LIMIT=15
BLOCK_GIVEUP=45
# nmap gives up on the host after this long (once blocked, the rest of the
# scan is unanswered probes).
HOST_TIMEOUT=10s
# The growth rule (see the header).
FD_SLACK=8
THREAD_SLACK=8
RSS_GROWTH_PCT=50

# The resolver that never answers: in 203.0.113.0/24 (TEST-NET-3), routed
# from the victim to the attacker namespace, which drops it.
SILENT_DNS=203.0.113.53
NETNS_ETC=/etc/netns/$NS_VIC
RESOLV_MARK="# scanwarden scripts/soak.sh: a resolver that never answers"
NETNS_ETC_MADE=0 # 1: this run created NETNS_ETC; 2: and /etc/netns too

# flood.sh's settings, from the soak's (a caller's FLOOD_* do not apply).
E2E_BACKEND=$SOAK_BACKEND
FLOOD_BACKEND=$SOAK_BACKEND
FLOOD_RATE=$SOAK_RATE
FLOOD_RATE_LIMIT=${SOAK_RATE_LIMIT:-}
FLOOD_MAX_SOURCES=""
FLOOD_ONLINK=0

T0_US=""   # the soak's start, microseconds since the epoch
DSTART=""  # the daemon's start time (proc_start), told from a reused PID
SAMPLER_PID=""
RELOADER_PID=""
RELOAD_COUNT="" # a file: one byte per SIGHUP sent
SAMPLES=""      # the figures, tab-separated, one line a sample
DIED_AT=""
declare -a SCAN_ROWS=()
declare -A SCAN_SRC=() SCAN_RESULT=() UNBLOCKED=()

# ---- time ---------------------------------------------------------------

now_us() { local t=$EPOCHREALTIME; printf '%s\n' "${t/./}"; }

# elapsed: whole seconds since the soak began.
elapsed() { printf '%d\n' $((($(now_us) - T0_US) / 1000000)); }

# secs US [DIGITS]: microseconds as seconds (6 decimals, or DIGITS).
secs() { awk -v u="$1" -v d="${2:-6}" 'BEGIN { printf "%." d "f\n", u / 1e6 }'; }

# sleep_until US: plain sleep until that time (for the helper processes;
# the main shell uses pause, which a Ctrl-C interrupts).
sleep_until() {
	local d=$(($1 - $(now_us)))
	((d <= 0)) || sleep "$(secs "$d")"
}

# wait_until S: until S seconds into the soak, checking the daemon every
# second; false as soon as it is gone.
wait_until() {
	local d
	while :; do
		same_daemon || return 1
		d=$((T0_US + $1 * 1000000 - $(now_us)))
		((d > 0)) || return 0
		((d <= 1000000)) || d=1000000
		pause "$(secs "$d")"
	done
}

# same_daemon: the daemon started is still running (its PID is not reused).
same_daemon() { [[ -n $DPID && $(proc_start "$DPID" 2>/dev/null) == "$DSTART" ]]; }

# ---- set-up -------------------------------------------------------------

check_settings() {
	local v
	for v in SOAK_SECONDS SOAK_RATE SOAK_SCAN_EVERY SOAK_SCAN_PORTS SOAK_RELOADS SOAK_UNBLOCK_EVERY SOAK_SAMPLE SOAK_WARMUP SOAK_RACE; do
		[[ ${!v} =~ ^[0-9]+$ ]] || die "$v='${!v}': want a whole number"
	done
	for v in SOAK_SECONDS SOAK_RATE SOAK_SCAN_EVERY SOAK_SCAN_PORTS SOAK_SAMPLE; do
		((${!v} >= 1)) || die "$v must be at least 1"
	done
	((SOAK_SCAN_PORTS <= 65535)) || die "SOAK_SCAN_PORTS=$SOAK_SCAN_PORTS: at most 65535"
	((SOAK_SCAN_EVERY <= SOAK_SECONDS)) || die "SOAK_SCAN_EVERY=$SOAK_SCAN_EVERY is longer than SOAK_SECONDS=$SOAK_SECONDS: no scanner would run"
	# lab.sh attacker-addr gives 49 fresh addresses of each family
	((SOAK_SECONDS / SOAK_SCAN_EVERY <= 98)) ||
		die "$((SOAK_SECONDS / SOAK_SCAN_EVERY)) scanners: the lab has fresh addresses for 98 (49 IPv4, 49 IPv6); raise SOAK_SCAN_EVERY"
	local t
	for t in nft getent; do
		command -v "$t" >/dev/null || die "$t is missing: run scripts/deps.sh as root"
	done
}

# silent_dns: the victim's resolver is SILENT_DNS, which the attacker
# namespace drops; a reverse lookup in the victim must then hang.
silent_dns() {
	if [[ -e $NETNS_ETC ]]; then
		grep -qxF "$RESOLV_MARK" "$NETNS_ETC/resolv.conf" 2>/dev/null ||
			die "$NETNS_ETC exists and is not a leftover of soak.sh: remove it or set SW_LAB_PREFIX"
		rm -rf "$NETNS_ETC"
	fi
	if [[ ! -d /etc/netns ]]; then
		mkdir -m 0755 /etc/netns
		NETNS_ETC_MADE=2
	fi
	mkdir -m 0755 "$NETNS_ETC"
	((NETNS_ETC_MADE == 2)) || NETNS_ETC_MADE=1
	printf '%s\nnameserver %s\n' "$RESOLV_MARK" "$SILENT_DNS" >"$NETNS_ETC/resolv.conf"
	chmod 0644 "$NETNS_ETC/resolv.conf"
	ip -n "$NS_VIC" route add "$SILENT_DNS/32" via "$ATTACKER4" dev "$IFACE"
	ip netns exec "$NS_ATT" nft -f - <<EOF
table ip soakdns {
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		ip daddr $SILENT_DNS counter drop
	}
}
EOF
	local rc=0
	timeout 3 ip netns exec "$NS_VIC" getent hosts 198.51.100.101 >"$WORK/logs/getent.out" 2>&1 || rc=$?
	((rc == 124)) || die "a reverse lookup in $NS_VIC did not hang (exit $rc: $(cat "$WORK/logs/getent.out")): the resolver $SILENT_DNS is not silent"
	(($(dns_dropped) + 0 > 0)) || die "a reverse lookup in $NS_VIC sent nothing to $SILENT_DNS"
	say "the victim's resolver is $SILENT_DNS ($NETNS_ETC/resolv.conf), reached through the attacker namespace, which drops it: a reverse lookup hangs"
}

# dns_dropped: packets the attacker namespace dropped for SILENT_DNS.
dns_dropped() {
	local n
	n=$(ip netns exec "$NS_ATT" nft list chain ip soakdns pre 2>/dev/null |
		sed -n 's/.*counter packets \([0-9]*\).*/\1/p' | head -n 1)
	echo "${n:-0}"
}

# check_daemon_resolver: the daemon itself sees the silent resolver.
check_daemon_resolver() {
	grep -q "^nameserver $SILENT_DNS\$" "/proc/$DPID/root/etc/resolv.conf" ||
		die "the daemon's /etc/resolv.conf is not $NETNS_ETC/resolv.conf: $(head -n 3 "/proc/$DPID/root/etc/resolv.conf" 2>&1)"
}

# soak_cleanup: the helpers and the daemon first (so that no SIGHUP can go
# to a reused PID and nothing resolves once the resolv.conf is gone), the
# /etc/netns directory, then e2e.sh's cleanup with this exit status.
soak_cleanup() {
	local rc=$? pid
	for pid in "$RELOADER_PID" "$SAMPLER_PID"; do
		[[ -z $pid ]] || stop_pid "$pid" 2 || true
	done
	RELOADER_PID="" SAMPLER_PID=""
	if [[ -n $DPID ]] && alive "$DPID"; then
		stop_pid "$DPID" 10 || true
	fi
	DPID=""
	if ((NETNS_ETC_MADE)); then
		rm -rf "$NETNS_ETC"
		((NETNS_ETC_MADE == 1)) || rmdir /etc/netns 2>/dev/null || true
	fi
	if ((rc == 0)); then
		cleanup
	else
		return_rc "$rc" || cleanup
	fi
}

return_rc() { return "$1"; }

# ---- the helpers: SIGHUPs and figures -----------------------------------

# reloader: SOAK_RELOADS SIGHUPs to the daemon, evenly over the run.
reloader() {
	local i iv=$((SOAK_SECONDS * 1000000 / SOAK_RELOADS))
	for ((i = 1; i <= SOAK_RELOADS; i++)); do
		sleep_until $((T0_US + i * iv - iv / 2))
		same_daemon || return 0
		kill -HUP "$DPID" 2>/dev/null || return 0
		printf x >>"$RELOAD_COUNT"
	done
}

reloads_sent() { stat -c %s "$RELOAD_COUNT"; }

FIG_FMT='%s: figures: %5s %8s %5s %8s %7s %8s %8s %6s %8s %7s\n'

# sampler: a line of figures every SOAK_SAMPLE seconds until SOAK_SECONDS.
sampler() {
	local k t rss fds thr drops stats blocked notblocked bans out reloads cpu
	for ((k = 1; k <= SOAK_SECONDS / SOAK_SAMPLE; k++)); do
		sleep_until $((T0_US + k * SOAK_SAMPLE * 1000000))
		if ! same_daemon; then
			say "figures: the daemon (PID $DPID) is gone, $(elapsed)s into the soak"
			return 0
		fi
		t=$(elapsed)
		rss=$(status_kib "$DPID" VmRSS) || rss=""
		thr=$(status_kib "$DPID" Threads) || thr=""
		# shellcheck disable=SC2012 # fd names are numbers
		fds=$(ls "/proc/$DPID/fd" 2>/dev/null | wc -l) || fds=""
		cpu=$(cpu_s "$DPID" 2>/dev/null) || cpu=""
		same_daemon || continue # gone while it was read: no figures
		stats=$(grep -F '"msg":"capture on ' "$DLOG" | tail -n 1 || true)
		drops=$(jnum "$stats" dropped)
		blocked=$(grep -cF '"msg":"blocked ' "$DLOG" || true)
		notblocked=$(grep -cF '"msg":"not blocked ' "$DLOG" || true)
		if out=$(timeout 10 ip netns exec "$NS_VIC" "$SWBIN" list --json -c "$CONF" 2>/dev/null); then
			bans=$(grep -c '"addr":' <<<"$out" || true)
		else
			bans="?"
		fi
		reloads=$(reloads_sent)
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$rss" "$fds" "$thr" "${drops:--}" \
			"$blocked" "$notblocked" "$bans" "$reloads" "$cpu" >>"$SAMPLES"
		# shellcheck disable=SC2059 # the format is FIG_FMT
		printf "$FIG_FMT" "$TAG" "$t" "$rss" "$fds" "$thr" "${drops:--}" "$blocked" "$notblocked" "$bans" "$reloads" "$cpu"
	done
}

# finish PID SECONDS: wait up to SECONDS for a helper to end by itself,
# then stop it.
finish() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		alive "$1" || break
		pause 0.1
	done
	stop_pid "$1" 2 || true
}

# ---- scanners -----------------------------------------------------------

# soak_scan I: scanner I (IPv4 when odd, IPv6 when even) from a fresh
# address; watches the backend for its ban from nmap's start, then checks
# the block as flood.sh does. Records its row.
soak_scan() {
	local i=$1 args pair t0 ban_us="" ban_s="-" npid rc=0 line ms="-" probes="-" trig="-" res=OK why first fam=IPv4 at
	pair=$(((i + 1) / 2))
	if ((i % 2)); then args=-sS; else args="-6 -sS" fam=IPv6; fi
	scan_addrs "$pair" "$args"
	nmap_cmd "$args" "$SRC" "$DST" --top-ports "$SOAK_SCAN_PORTS" --host-timeout "$HOST_TIMEOUT"
	at=$(elapsed)
	say "scanner $i at ${at}s: ${NMAP[*]}"
	t0=$(now_us)
	start_bg "scan-$i" "$NS_ATT" "$WORK/logs/scan-$i.nmap" "${NMAP[@]}"
	npid=$BG_PID
	while :; do
		if (($(ban_count "$SRC") > 0)); then
			ban_us=$(($(now_us) - t0))
			break
		fi
		(($(now_us) - t0 < BLOCK_GIVEUP * 1000000)) || break
		pause 0.2
	done
	wait "$npid" || rc=$?
	forget "$npid"
	((rc == 0)) || fail "scanner $i: '${NMAP[*]}' exited $rc: $(tail -n 3 "$WORK/logs/scan-$i.nmap")"
	# (the rule comes first, the records and the "blocked" line after it;
	# 300 ports take nmap less than a second, so it may be done already)
	[[ -z $ban_us ]] || wait_blocked "$SRC" "$BLOCK_WAIT" || true

	line=$(blocked_lines "$SRC" | head -n 1)
	if [[ -n $line ]]; then
		ms=$(jnum "$line" block_ms) probes=$(jnum "$line" probes) trig=$(jstr "$line" trigger)
		[[ $line != *'"kernel_trap":true'* ]] || trig=kernel
		[[ ! $ms =~ ^[0-9.eE+-]+$ ]] || ms=$(printf '%.1f' "$ms")
		ms=${ms:--} probes=${probes:--} trig=${trig:--}
	fi
	if [[ -z $ban_us ]]; then
		res=FAIL
		first=$(decision_lines "$SRC" | head -n 1)
		first=$(jstr "$first" outcome)
		fail "scanner $i $SRC was not banned by $E2E_BACKEND within ${BLOCK_GIVEUP}s of nmap's start (the daemon's first decision on it: ${first:-none})"
	else
		ban_s=$(secs "$ban_us" 1)
		if ((ban_us > BLOCK_LIMIT * 1000000)); then
			res=LATE
			fail "scanner $i $SRC was banned ${ban_s}s after nmap started, more than ${BLOCK_LIMIT}s"
		fi
		if [[ $ms =~ ^[0-9.]+$ ]] && awk -v m="$ms" -v l="$BLOCK_LIMIT" 'BEGIN { exit !(m > l * 1000) }'; then
			res=LATE
			fail "scanner $i $SRC: the daemon says its rule was in place ${ms} ms after its first probe, more than ${BLOCK_LIMIT}s"
		fi
		if ! why=$(check_blocked "$SRC"); then
			res=FAIL
			fail "scanner $i $SRC was banned, but: $why"
		fi
	fi
	SCAN_SRC[$i]=$SRC SCAN_RESULT[$i]=$res
	SCAN_ROWS+=("$i|$SRC|$fam|$at|$ban_s|$ms|$probes|$trig")
	say "scanner $i $SRC: $res: banned ${ban_s}s after nmap started (the daemon: rule ${ms} ms after the first probe, $probes probes, trigger $trig)"
}

# soak_unblock I: scanwarden unblock of scanner I, checked as e2e.sh does.
soak_unblock() {
	local a=${SCAN_SRC[$1]} f0=$FAILURES
	say "scanwarden unblock $a (scanner $1), $(elapsed)s into the soak"
	check_unblock "$a"
	if ((FAILURES == f0)); then UNBLOCKED[$1]=ok; else UNBLOCKED[$1]=FAIL; fi
}

# ---- the verdict on growth ----------------------------------------------

# growth: the growth rule over SAMPLES; prints its table and fails.
growth() {
	local g k n t1 t2 t3 t4 r1 r2 f1 f2 h1 h2 v
	g=$(awk -F '\t' -v w="$SOAK_WARMUP" '
		$1 >= w && $2 != "" && $3 != "" && $4 != "" { n++; t[n] = $1; r[n] = $2; f[n] = $3; h[n] = $4 }
		END {
			k = int(n / 3)
			if (k < 1) { print n + 0; exit }
			for (i = 1; i <= k; i++) { r1 += r[i]; f1 += f[i]; h1 += h[i]; j = n - k + i; r2 += r[j]; f2 += f[j]; h2 += h[j] }
			printf "%d %d %s %s %s %s %.0f %.0f %.1f %.1f %.1f %.1f\n", n, k, t[1], t[k], t[n - k + 1], t[n], r1 / k, r2 / k, f1 / k, f2 / k, h1 / k, h2 / k
		}' "$SAMPLES")
	read -r n k t1 t2 t3 t4 r1 r2 f1 f2 h1 h2 <<<"$g"
	if [[ -z ${k:-} ]]; then
		say "  growth: not judged: ${n:-0} sample(s) from ${SOAK_WARMUP}s on, 3 needed (a longer SOAK_SECONDS, or a shorter SOAK_WARMUP or SOAK_SAMPLE)"
		return
	fi
	say "  growth (rule: mean of the last third of the samples from ${SOAK_WARMUP}s on against the first third: fds or threads up by more than $FD_SLACK/$THREAD_SLACK, RSS by more than ${RSS_GROWTH_PCT}%):"
	say "  $n samples: first third ${t1}-${t2}s, last third ${t3}-${t4}s ($k each)"
	printf '%s:     %-8s %12s %12s %10s %8s  %s\n' "$TAG" metric "first third" "last third" change limit result
	v=$(awk -v a="$r1" -v b="$r2" 'BEGIN { printf "%+.1f%%", (b - a) * 100 / a }')
	if awk -v a="$r1" -v b="$r2" -v p="$RSS_GROWTH_PCT" 'BEGIN { exit !(b > a * (1 + p / 100)) }'; then
		growth_row "RSS KiB" "$r1" "$r2" "$v" "+${RSS_GROWTH_PCT}%" FAIL
		fail "growth: the daemon's RSS grew from $r1 KiB to $r2 KiB ($v), more than ${RSS_GROWTH_PCT}%"
	else
		growth_row "RSS KiB" "$r1" "$r2" "$v" "+${RSS_GROWTH_PCT}%" ok
	fi
	growth_slack fds "$f1" "$f2" "$FD_SLACK" "open fds"
	growth_slack threads "$h1" "$h2" "$THREAD_SLACK" threads
}

growth_row() { printf '%s:     %-8s %12s %12s %10s %8s  %s\n' "$TAG" "$@"; }

# growth_slack NAME FIRST LAST SLACK WHAT
growth_slack() {
	local v
	v=$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%+.1f", b - a }')
	if awk -v a="$2" -v b="$3" -v s="$4" 'BEGIN { exit !(b - a > s) }'; then
		growth_row "$1" "$2" "$3" "$v" "+$4" FAIL
		fail "growth: the daemon's $5 grew from $2 to $3 on average ($v), more than $4"
	else
		growth_row "$1" "$2" "$3" "$v" "+$4" ok
	fi
}

# ---- main ---------------------------------------------------------------

soak_main() {
	local nscans i started=$SECONDS traps hwm stats v rc f0 dns0 dns1 reloaded races errs unb build="no -race"
	local src fam at ban ms probes trig limit allowed forged
	preflight
	check_settings
	nscans=$((SOAK_SECONDS / SOAK_SCAN_EVERY))
	# one SYN a source, enough sources for the run and its last scan
	FLOOD_SOURCES=$((SOAK_RATE * (SOAK_SECONDS + 300)))
	((FLOOD_SOURCES <= 4294967294)) || FLOOD_SOURCES=4294967294
	FLOOD_PACKETS=$FLOOD_SOURCES
	((SOAK_RACE)) && export E2E_RACE=1 # e2e.sh's build makes a -race one
	setup $(((nscans + 1) / 2))
	trap soak_cleanup EXIT
	say "building synflood"
	(cd "$REPO" && go build -o "$WORK/synflood" ./scripts/synflood)
	SYNFLOOD=$WORK/synflood
	flood_config
	printf 'RESOLVE_HOST="1"\n' >>"$CONF"
	route_forged
	silent_dns
	start_daemon
	DSTART=$(proc_start "$DPID")
	check_daemon_resolver
	RELOAD_COUNT=$WORK/reloads
	SAMPLES=$WORK/samples.tsv
	: >"$RELOAD_COUNT"
	: >"$SAMPLES"
	dns0=$(dns_dropped)

	[[ ${E2E_RACE:-} != 1 ]] || build="-race build"
	say "${SOAK_SECONDS}s of soak: flood $SOAK_RATE SYNs/s from forged sources in $FORGED_NET; a scanner every ${SOAK_SCAN_EVERY}s ($nscans, nmap -sS --top-ports $SOAK_SCAN_PORTS, IPv4 and IPv6 in turn, each to be banned within ${BLOCK_LIMIT}s); $SOAK_RELOADS SIGHUPs; backend $E2E_BACKEND; RESOLVE_HOST=1 with a silent resolver; $build"
	T0_US=$(now_us)
	traps=$(conf_value TCP_PORTS "$(sed -n 's/^TCP_PORTS="\([^"]*\)".*/\1/p' "$REPO/etc/scanwarden.conf")")
	start_flood "$traps"
	if ((SOAK_RELOADS > 0)); then
		reloader &
		RELOADER_PID=$!
		BG_PIDS+=("$RELOADER_PID")
	fi
	# shellcheck disable=SC2059 # the format is FIG_FMT
	printf "$FIG_FMT" "$TAG" t/s rss/KiB fds threads drops blocked not-blkd bans reloads cpu/s
	sampler &
	SAMPLER_PID=$!
	BG_PIDS+=("$SAMPLER_PID")

	for ((i = 1; i <= nscans; i++)); do
		if ! wait_until $(((i - 1) * SOAK_SCAN_EVERY + SOAK_SCAN_EVERY / 2)); then
			DIED_AT=$(elapsed)
			break
		fi
		soak_scan "$i"
		if ((SOAK_UNBLOCK_EVERY > 0 && i >= 2 && i % SOAK_UNBLOCK_EVERY == 0)) && [[ ${SCAN_RESULT[$((i - 1))]} != FAIL ]]; then
			soak_unblock $((i - 1))
		fi
	done
	if [[ -z $DIED_AT ]] && ! wait_until "$SOAK_SECONDS"; then
		DIED_AT=$(elapsed)
	fi

	# ---- the end ----
	[[ -z $SAMPLER_PID ]] || finish "$SAMPLER_PID" 20
	[[ -z $RELOADER_PID ]] || finish "$RELOADER_PID" 5
	SAMPLER_PID="" RELOADER_PID=""
	alive "$FLOOD_PID" || fail "synflood ended before the soak did: $(tail -n 2 "$WORK/logs/synflood.log")"
	rc=0
	stop_pid "$FLOOD_PID" 5 || rc=$?
	FLOOD_PID=""
	FLOOD_SUMMARY=$(grep '^synflood: sent=' "$WORK/logs/synflood.log" || true)
	((rc == 0)) || fail "synflood exited $rc: $(tail -n 3 "$WORK/logs/synflood.log")"
	dns1=$(dns_dropped)

	say "the benign client"
	check_benign
	for i in "${!UNBLOCKED[@]}"; do
		[[ ${UNBLOCKED[$i]} == ok ]] || continue
		if (($(ban_count "${SCAN_SRC[$i]}") != 0)) || state_has "${SCAN_SRC[$i]}"; then
			UNBLOCKED[$i]="came back"
			fail "scanner $i ${SCAN_SRC[$i]}, unblocked, is blocked again at the end"
		fi
	done
	if [[ -n $DIED_AT ]]; then
		fail "the daemon died (found gone ${DIED_AT}s into the soak)"
	fi
	hwm=""
	same_daemon && hwm=$(status_kib "$DPID" VmHWM)
	f0=$FAILURES
	check_no_errors
	errs=$((FAILURES - f0))
	say "stopping scanwarden (SIGTERM)"
	stop_daemon
	((DAEMON_RC == 0)) || fail "scanwarden exited with status $DAEMON_RC${DIED_AT:+ (it had died)}, want 0 on SIGTERM"
	races=$(cat "$DLOG" "$WORK/logs/daemon.stdout" 2>/dev/null | grep -c 'DATA RACE' || true)
	((races == 0)) || fail "the daemon's output holds $races 'DATA RACE' line(s): $(grep -m 1 -A 12 'DATA RACE' "$DLOG" | tr '\n' ' ' | cut -c 1-600)"

	# BLOCK_RATE_LIMIT holds, reloads or not (flood.sh's bound: each
	# forged source sends one SYN, so only the budget of sources seen on
	# a single probe applies, once a minute)
	limit=$(conf_value BLOCK_RATE_LIMIT "$(go_default conf/conf.go DefaultBlockRateLimit)")
	allowed=$(awk -v e="$(field "$FLOOD_SUMMARY" elapsed)" -v l="$limit" 'BEGIN { printf "%d", l * (1 + int(e / 60)) }')
	forged=$(count_log "$FORGED_RE" '"outcome":"blocked"')
	((forged <= allowed)) ||
		fail "$forged forged sources blocked in the flood's $(field "$FLOOD_SUMMARY" elapsed)s, more than BLOCK_RATE_LIMIT=$limit a minute allows ($allowed)"

	# ---- the summary ----
	say "summary"
	printf '%s:   %-7s %-16s %-6s %6s %11s %10s %7s %-7s %-9s %s\n' "$TAG" scanner source family "at/s" "banned/s" block_ms probes trigger unblock result
	for v in "${SCAN_ROWS[@]}"; do
		IFS='|' read -r i src fam at ban ms probes trig <<<"$v"
		unb=${UNBLOCKED[$i]:--}
		printf '%s:   %-7s %-16s %-6s %6s %11s %10s %7s %-7s %-9s %s\n' "$TAG" "$i" "$src" "$fam" "$at" "$ban" "$ms" "$probes" "$trig" "$unb" "${SCAN_RESULT[$i]}"
	done
	((${#SCAN_ROWS[@]} == nscans)) || fail "$((nscans - ${#SCAN_ROWS[@]})) of $nscans scanners never ran (the daemon was gone)"
	say "  (banned/s: from nmap's start to the ban in $E2E_BACKEND, polled every 0.2 s, limit ${BLOCK_LIMIT}s; block_ms: the daemon's, from the first probe it saw to the rule)"
	growth
	reloaded=$(grep -c 'configuration reloaded' "$DLOG" || true)
	say "  reloads: $(reloads_sent) SIGHUPs sent of $SOAK_RELOADS (the daemon logged $reloaded 'configuration reloaded' lines; signals that arrive during a reload coalesce)"
	say "  decisions: $(grep -cF '"msg":"blocked ' "$DLOG" || true) 'blocked' lines ($forged for forged sources), $(grep -cF '"msg":"not blocked ' "$DLOG" || true) 'not blocked' ($(count_log "$FORGED_RE" '"outcome":"rate limited"') forged sources rate limited); BLOCK_RATE_LIMIT=$limit a minute allows at most $allowed forged blocks in the flood's $(field "$FLOOD_SUMMARY" elapsed)s"
	say "  flood: ${FLOOD_SUMMARY#synflood: }"
	stats=$(grep -F '"msg":"capture on ' "$DLOG" | tail -n 1 || true)
	say "  capture (the daemon's statistics at exit): $(jnum "$stats" received) packets received, $(jnum "$stats" dropped) dropped by the kernel, $(jnum "$stats" if_dropped) by the interface"
	say "  DNS: $((${dns1:-0} - ${dns0:-0})) queries to the silent resolver $SILENT_DNS dropped unanswered during the soak"
	[[ -z $hwm ]] || hwm="$(mib "$hwm") MiB"
	say "  daemon: peak RSS (VmHWM) ${hwm:-unknown}; exit status $DAEMON_RC; $races DATA RACE line(s); $errs error check(s) failed"
	say "$FAILURES failed check(s); $((SECONDS - started))s"
	((FAILURES == 0)) || exit 1
	say "PASS"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	soak_main "$@"
fi
