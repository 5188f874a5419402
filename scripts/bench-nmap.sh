#!/usr/bin/env bash
# scripts/bench-nmap.sh: what nmap still learns before scanwarden blocks it,
# with scanwarden's default config, with Debian's portsentry.conf, per
# blocking backend, and against the real PortSentry 1.2 as the reference
# (part of `make bench`; issue #13). Figures are printed, never asserted.
#
# Variants (BENCH_NMAP_VARIANTS picks them, space-separated; the default
# list is marked *):
#
# * default        the bench's config below with no BLOCK_BACKEND and no
#                  KERNEL_TRAP line: the shipped defaults. The backend the
#                  daemon chose is printed: its start-up line that names
#                  BLOCK_BACKEND ("BLOCK_BACKEND auto: nftables (...)"), or
#                  "default" when it logs none
# * default+atcp   the same, the daemon in advanced mode (run -atcp)
# * portsentry.conf  Debian's portsentry.conf (package portsentry) as
#                  shipped, fed to scanwarden: BLOCK_TCP="0" and
#                  BLOCK_UDP="0" there (Debian's PortSentry "does not block
#                  anything by default", its debconf note says), so this
#                  variant detects and logs but never blocks. Changed for
#                  the lab, and nothing else:
#                    HISTORY_FILE="/var/lib/portsentry/portsentry.history"
#                      -> HISTORY_FILE="DDIR/portsentry.history"
#                    BLOCKED_FILE="/var/lib/portsentry/portsentry.blocked"
#                      -> BLOCKED_FILE="DDIR/portsentry.blocked"
#                    IGNORE_FILE="/etc/portsentry/portsentry.ignore"
#                      -> IGNORE_FILE="DDIR/portsentry.ignore" (a copy of
#                      the package's portsentry.ignore.static, from which
#                      Debian's init script builds that file)
#                  and two scanwarden keys appended (PortSentry had neither):
#                    STATE_DIR="DDIR/state"
#                    HOSTS_DENY_FILE="DDIR/hosts.deny" (an empty file: the
#                      shipped KILL_HOSTS_DENY stays as it is)
#                  (DDIR: the variant's directory in the work directory).
#                  No BLOCK_BACKEND line, as Debian's file has none
# * portsentry.conf+block  the same with the reference run's changes (below):
#                  BLOCK_TCP="1", BLOCK_UDP="1" and Debian's own iptables
#                  example as KILL_ROUTE: what a Debian administrator who
#                  turns blocking on runs, and the config PortSentry 1.2
#                  gets here, side by side (scanwarden does not run an
#                  iptables DROP KILL_ROUTE while its backend blocks; with
#                  such a KILL_ROUTE, auto chooses ipset). Not named by the
#                  issue: the shipped file never blocks, and this is what
#                  scanwarden makes of it once blocking is on
# * portsentry-1.2 the REAL PortSentry 1.2 (/usr/sbin/portsentry of Debian's
#                  package, see "PortSentry 1.2" below), portsentry -stcp
#                  (its stealth mode: Debian's /etc/default/portsentry
#                  starts -tcp and -udp, which bind the trap ports and see
#                  no FIN scan), as root in the victim, with Debian's
#                  portsentry.conf and these changes, so that it blocks:
#                    BLOCK_UDP="0" -> BLOCK_UDP="1"
#                    BLOCK_TCP="0" -> BLOCK_TCP="1"
#                    KILL_ROUTE="/sbin/route add -host $TARGET$ reject"
#                      commented out, and Debian's own example
#                      #KILL_ROUTE="/sbin/iptables -I INPUT -s $TARGET$ -j DROP"
#                      uncommented (a DROP rule in the victim's INPUT chain)
#                    HISTORY_FILE, BLOCKED_FILE -> files in the work directory
#                  (IGNORE_FILE stays /etc/portsentry/portsentry.ignore:
#                  the package's portsentry.ignore.static is put there; the
#                  shipped KILL_HOSTS_DENY stays and writes /etc/hosts.deny,
#                  which is the overlay's, below, not the host's). It is
#                  IPv4-only: syn6 and fin6 show what it lets through. It
#                  logs to syslog only (/dev/log; none in the lab): whether
#                  it blocked SRC is read from the INPUT chain after the
#                  scan, and it has no block_ms (see drop_ms)
#   dry-run        BLOCK_BACKEND="dry-run"                   (baseline: nothing blocked)
# * iptables       BLOCK_BACKEND="iptables"  KERNEL_TRAP="0"
# * nftables       BLOCK_BACKEND="nftables"  KERNEL_TRAP="0"
#   nft-normalprio the same with CAPTURE_REALTIME="0" (the capture and
#                  blocking threads at normal priority)
# * nftables+trap  BLOCK_BACKEND="nftables"  KERNEL_TRAP="1"
# * nft+trap+atcp  the same, the daemon in advanced mode (run -atcp)
#   ipset          BLOCK_BACKEND="ipset"     KERNEL_TRAP="0"
# * ipset+trap     BLOCK_BACKEND="ipset"     KERNEL_TRAP="1"
#   ipset+trap+atcp  the same, in advanced mode
#
# The bench's config (every variant but the portsentry ones): its own
# STATE_DIR, HISTORY_FILE and BLOCKED_FILE, IGNORE_FILE="", no hosts.deny
# entry (KILL_HOSTS_DENY="", so that block_ms is the firewall's alone),
# SCAN_TRIGGER="0", BLOCK_RATE_LIMIT="600", the default TCP_PORTS and the
# daemon's default -stcp -sudp modes (PortSentry's stealth mode), and the
# variant's BLOCK_BACKEND, KERNEL_TRAP and CAPTURE_REALTIME lines (none for
# default). Every scanwarden variant's daemon gets what e2e.sh's rt_grant
# gives: the unit's RTPRIO limit of 1, or CAP_SYS_NICE where root may not
# raise it.
#
# For each variant it brings up a fresh namespace lab (scripts/lab.sh,
# namespaces "swbn-*" unless SW_LAB_PREFIX says otherwise), runs labsrv
# serve in the victim (HTTP :80 open, every other TCP port closed) and the
# daemon there exactly as scripts/e2e.sh does (`scanwarden run -c CONF
# --log-format json` as the user scanwarden with only CAP_NET_RAW and
# CAP_NET_ADMIN), or PortSentry 1.2. Then, BENCH_NMAP_RUNS (5) times, each
# scan from a fresh attacker address (198.51.100.(100+N) or
# fd00:77::(100+N); N = run * scans + scan + 1, each N used once):
#
#   syn     nmap -n -Pn -T4 -sS       OPTS -oX FILE -e veth0 -S SRC 198.51.100.10
#   fin     nmap -n -Pn -T4 -sF       OPTS ...                      198.51.100.10
#   syn6    nmap -n -Pn -T4 -6 -sS    OPTS ...                      fd00:77::10
#   fin6    nmap -n -Pn -T4 -6 -sF    OPTS ...                      fd00:77::10
#   ack     nmap -n -Pn -T4 -sA --top-ports 23 OPTS ...             198.51.100.10
#   maimon  nmap -n -Pn -T4 -sM --top-ports 23 OPTS ...             198.51.100.10
#
# syn to fin6 over nmap's default 1,000 ports; ack and maimon over its
# top 23. OPTS, "--max-retries 0 --min-rate 1000", only keeps each scan to
# seconds and changes nothing before the block: --max-retries 0 (one probe
# per port), since once the source is blocked every further probe is
# dropped and retries would only be waited out; --min-rate 1000, a floor
# under nmap's own rate (it sends tens of thousands of probes a second on
# the lab's bridge until the block), without which nmap reads the drops as
# congestion and takes 90 s to send the rest. (BENCH_NMAP_OPTS replaces
# them; -n -Pn -T4 stay.) At that rate a 1,000-port scan lasts some 40 ms
# on the wire and a 23-port one under a millisecond: a block 0.4 ms after
# the first probe can come after the last of 23. A variant that cannot
# start prints "skipped: REASON".
#
# Printed per scan, and then per variant and scan the median over the
# runs with the smallest and largest value:
#
#   classified    ports nmap classified, of the ports it reported: every
#                 state but "filtered" and "open|filtered" (so open,
#                 closed, unfiltered, closed|filtered), summed from the
#                 <extraports> and <port> elements of its -oX output. For
#                 ack that is the ports it found "unfiltered", for maimon
#                 "closed" (the victim answers both with a reset).
#   answered      probes the victim's own stack answered: from tcpdump on
#                 the victim's veth0 (which sees packets before the
#                 firewall), the probes for whose (source port,
#                 destination port) the victim sent a TCP segment back.
#                 Probes are the TCP segments from SRC to the victim
#                 without RST and, but for ack and maimon, without ACK
#                 (so nmap's resets and any handshake's ACK are no
#                 probes); ack and maimon probes are segments with ACK
#                 (ACK, FIN+ACK), and the attacker sends no others. IPv4
#                 and IPv6 alike. A FIN probe to an open port is never
#                 answered.
#   before_block  probes that reached the victim's interface before the
#                 first reply-less period, a run of REPLYLESS_RUN (10)
#                 consecutive probes, in capture order, none of them
#                 answered: the number of probes before the first probe
#                 of that run (all probes when there is no such run). For
#                 ack and maimon the run is REPLYLESS_RUN_ACK (2) probes:
#                 fewer than ten of their 23 may come after the block, and
#                 the victim answers every one of their probes, to an
#                 open port or a closed one.
#   drop_ms       ms from the first probe to the first probe of that run,
#                 on the capture's clock ("-": no run): the block as the
#                 wire sees it, for PortSentry 1.2 too.
#   probes, block_ms  from the daemon's "blocked" decision line for SRC:
#                 the probes it had seen and the ms from the first probe
#                 to the block being in place ("-": no such line).
#   by            what blocked SRC: "kernel" (scanwarden's kernel trap),
#                 "capture" or "blocking" (its thread that put the rule in
#                 place), "KILL_ROUTE" (PortSentry 1.2's DROP rule found in
#                 INPUT), "-" (not blocked).
#
# The summary ends with the issue's targets, for comparison.
#
# PortSentry 1.2: Debian's package, never installed: `apt-get download
# portsentry` into the work directory and `dpkg-deb -x` (as
# conf/debian_test.go's fetchDebianPortsentry does; BENCH_PORTSENTRY_DEB=FILE
# uses that .deb instead), so no service is enabled on the host. Its
# binary has /etc/portsentry/portsentry.conf compiled in, so it runs
#
#   ip netns exec swbn-victim unshare --mount --propagation private sh -c '
#     mount -t tmpfs (on a directory of the work directory)
#     mount -t overlay -o lowerdir=/etc,upperdir=TMPFS/upper,... /etc
#     exec WORK/deb/root/usr/sbin/portsentry -stcp'
#
# with the edited portsentry.conf and the ignore file in the overlay's
# /etc/portsentry: the host's /etc is neither read for them nor written
# (hosts.deny), and everything goes with the mount namespace. PortSentry
# forks into the background; that process (found by its executable in the
# victim namespace) is registered with the lab (lab.sh adopt) and ended
# by its PID after the variant, or by lab.sh down on an early exit.
#
# Needs root, nmap, tcpdump, iptables, iproute2, setpriv and Go; apt-get,
# dpkg-deb, unshare and overlayfs for the portsentry variants; without
# root it prints "skipped" and exits 0. Everything is torn down on exit.
# Takes some 8 minutes with the defaults (printed at the end; each
# variant's time too).
# Environment: SW_LAB_PREFIX (default swbn-), BENCH_NMAP_RUNS (1..8: the
# scans times the runs must fit lab.sh's 49 fresh attacker addresses),
# BENCH_NMAP_OPTS, BENCH_NMAP_VARIANTS (names from the list above),
# BENCH_NMAP_SCANS (names from syn fin syn6 fin6 ack maimon),
# BENCH_PORTSENTRY_DEB (a portsentry_*.deb to use instead of downloading
# one), BENCH_DEBUG_COPY=DIR copies the logs, captures and nmap outputs
# there, KEEP_WORK=1 keeps the work directory of a failed run.
set -euo pipefail

export SW_LAB_PREFIX=${SW_LAB_PREFIX:-swbn-}
# shellcheck source=scripts/e2e.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e.sh"
TAG=bench-nmap

# REPLYLESS_RUN: consecutive unanswered probes that mark the block. Ten:
# the victim answers every SYN and every FIN to a closed port (and every
# ACK and FIN+ACK to any port), and nmap shuffles the ports, so its one
# open port cannot make such a run alone.
REPLYLESS_RUN=10
# REPLYLESS_RUN_ACK: the same for ack and maimon, whose 23 probes could
# leave fewer than ten after a block: two. The victim answers every ACK
# and every FIN+ACK with a reset, open port or closed, so two unanswered
# in a row are no chance.
REPLYLESS_RUN_ACK=2
# (e2e.sh's nmap_cmd already gives -n -Pn -T4.)
NMAP_OPTS=${BENCH_NMAP_OPTS:-"--max-retries 0 --min-rate 1000"}
# TCPDUMP_WAIT: seconds tcpdump may take to say it is listening.
TCPDUMP_WAIT=10
# SETTLE: seconds after nmap ends before the capture is stopped (late
# replies, SYN+ACK retransmissions).
SETTLE=0.5
# SCAN_BLOCK_WAIT: seconds after that for the daemon's "blocked" line (it
# normally comes during the scan; a scan it does not block waits it out).
SCAN_BLOCK_WAIT=2

# RUNS: runs of every scan per variant (fresh attacker addresses; lab.sh
# has 49 per lab, and each variant has a lab of its own).
RUNS=${BENCH_NMAP_RUNS:-5}

# VARIANTS: name, kind, BLOCK_BACKEND, KERNEL_TRAP, the daemon's mode
# flags, CAPTURE_REALTIME. Kind: "sw" (the bench's config; an empty
# BLOCK_BACKEND, KERNEL_TRAP or CAPTURE_REALTIME: no such line), "debian"
# (Debian's portsentry.conf as shipped), "debian-block" (with blocking
# on), "portsentry" (PortSentry 1.2). Modes: none is PortSentry's stealth
# -stcp -sudp; -atcp is advanced mode, where every unbound port below
# ADVANCED_PORTS_TCP is a trap, so that the kernel trap fires on the
# scan's first probe or nearly.
VARIANTS=(
	"default|sw||||"
	"default+atcp|sw|||-atcp|"
	"portsentry.conf|debian||||"
	"portsentry.conf+block|debian-block||||"
	"portsentry-1.2|portsentry|||-stcp|"
	"dry-run|sw|dry-run|0||1"
	"iptables|sw|iptables|0||1"
	"nftables|sw|nftables|0||1"
	"nft-normalprio|sw|nftables|0||0"
	"nftables+trap|sw|nftables|1||1"
	"nft+trap+atcp|sw|nftables|1|-atcp|1"
	"ipset|sw|ipset|0||1"
	"ipset+trap|sw|ipset|1||1"
	"ipset+trap+atcp|sw|ipset|1|-atcp|1"
)
DEFAULT_VARIANTS="default default+atcp portsentry.conf portsentry.conf+block portsentry-1.2 iptables nftables nftables+trap nft+trap+atcp ipset+trap"
# SCANS_ALL: label, nmap arguments (IPv6 when they start with -6), 1 when
# the probes carry ACK, the reply-less run that marks the block (see
# REPLYLESS_RUN).
SCANS_ALL=(
	"syn|-sS|0|$REPLYLESS_RUN"
	"fin|-sF|0|$REPLYLESS_RUN"
	"syn6|-6 -sS|0|$REPLYLESS_RUN"
	"fin6|-6 -sF|0|$REPLYLESS_RUN"
	"ack|-sA --top-ports 23|1|$REPLYLESS_RUN_ACK"
	"maimon|-sM --top-ports 23|1|$REPLYLESS_RUN_ACK"
)
BENCH_SCANS=()

declare -a RESULTS=() SUMMARY_KEYS=()
# Per "variant|scan": the runs' classified ports, probes before the block,
# block_ms and drop_ms, space-separated ("-" when unknown).
declare -A SUM_CLS=() SUM_BEFORE=() SUM_MS=() SUM_DROP=() SUM_BACKEND=()

# Debian's portsentry package, unpacked (ps_fetch): its root, version,
# and why it is not there.
DEB_ROOT="" DEB_VERSION="" DEB_ERR=""
# The running PortSentry 1.2 (ps_start).
PS_PID="" PSBIN=""
# The variant's backend, as printed (variant_backend).
BACKEND_LABEL=""

# bench_build: the daemon and labsrv, into the work directory (not
# bin/, which others may be building at the same time). A build broken by
# a change half made is tried again after a minute, twice.
bench_build() {
	local try
	say "building scanwarden and labsrv"
	for try in 1 2 3; do
		if (cd "$REPO" && go build -o "$WORK/scanwarden" ./cmd/scanwarden && go build -o "$WORK/labsrv" ./scripts/labsrv) \
			>"$WORK/logs/build.log" 2>&1; then
			break
		fi
		((try < 3)) || die "go build failed: $(tail -n 5 "$WORK/logs/build.log")"
		say "go build failed ($(tail -n 1 "$WORK/logs/build.log")): trying again in 60 s"
		pause 60
	done
	SWBIN=$WORK/scanwarden
	LABSRV=$WORK/labsrv
	chmod 0755 "$SWBIN"
}

# ---- Debian's portsentry package ----------------------------------------

# ps_fetch: Debian's portsentry package into $WORK/deb/root (DEB_ROOT), as
# conf/debian_test.go fetches it; false with the reason in DEB_ERR.
ps_fetch() {
	local dir=$WORK/deb debs=()
	mkdir -p "$dir"
	if [[ -n ${BENCH_PORTSENTRY_DEB:-} ]]; then
		debs=("$BENCH_PORTSENTRY_DEB")
	else
		if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
			DEB_ERR="apt-get or dpkg-deb missing: cannot fetch Debian's portsentry package"
			return 1
		fi
		say "apt-get download portsentry (Debian's package, unpacked into the work directory, not installed)"
		if ! (cd "$dir" && run_wait_to "$WORK/logs/apt-get.log" timeout 120 apt-get download portsentry); then
			DEB_ERR="apt-get download portsentry failed (no package lists? apt-get update, or BENCH_PORTSENTRY_DEB=FILE): $(tail -n 2 "$WORK/logs/apt-get.log" | tr '\n' ' ')"
			return 1
		fi
		debs=("$dir"/portsentry_*.deb)
	fi
	if ((${#debs[@]} != 1)) || [[ ! -f ${debs[0]} ]]; then
		DEB_ERR="want one portsentry .deb, have: ${debs[*]}"
		return 1
	fi
	if ! dpkg-deb -x "${debs[0]}" "$dir/root" 2>"$WORK/logs/dpkg-deb.log"; then
		DEB_ERR="dpkg-deb -x ${debs[0]} failed: $(tail -n 2 "$WORK/logs/dpkg-deb.log")"
		return 1
	fi
	DEB_VERSION=$(dpkg-deb -f "${debs[0]}" Version 2>/dev/null || echo "?")
	local f
	for f in etc/portsentry/portsentry.conf etc/portsentry/portsentry.ignore.static usr/sbin/portsentry; do
		if [[ ! -f $dir/root/$f ]]; then
			DEB_ERR="the package $(basename "${debs[0]}") has no /$f"
			return 1
		fi
	done
	DEB_ROOT=$dir/root
	say "Debian's portsentry $DEB_VERSION unpacked: $DEB_ROOT"
}

# ps_conf MODE DIR OUT: Debian's portsentry.conf edited into OUT (see the
# header): MODE "lab" changes HISTORY_FILE and BLOCKED_FILE to files in
# DIR and IGNORE_FILE to DIR/portsentry.ignore; "block" does that too and
# turns blocking on (BLOCK_TCP, BLOCK_UDP, KILL_ROUTE); "reference" turns
# blocking on and moves HISTORY_FILE and BLOCKED_FILE only. Each change
# must have happened (Debian's file as expected), else false with the
# reason in START_ERR. The changed lines go to the log.
ps_conf() {
	local mode=$1 dir=$2 out=$3 in=$DEB_ROOT/etc/portsentry/portsentry.conf want=2 n
	local sedargs=(
		-e "s#^HISTORY_FILE=\"/var/lib/portsentry/portsentry.history\"\$#HISTORY_FILE=\"$dir/portsentry.history\"#"
		-e "s#^BLOCKED_FILE=\"/var/lib/portsentry/portsentry.blocked\"\$#BLOCKED_FILE=\"$dir/portsentry.blocked\"#"
	)
	if [[ $mode != reference ]]; then
		sedargs+=(-e "s#^IGNORE_FILE=\"/etc/portsentry/portsentry.ignore\"\$#IGNORE_FILE=\"$dir/portsentry.ignore\"#")
		want=$((want + 1))
	fi
	if [[ $mode != lab ]]; then
		# Literal $TARGET$ wanted.
		# shellcheck disable=SC2016
		sedargs+=(
			-e 's#^BLOCK_TCP="0"$#BLOCK_TCP="1"#'
			-e 's#^BLOCK_UDP="0"$#BLOCK_UDP="1"#'
			-e 's#^KILL_ROUTE="/sbin/route add -host \$TARGET\$ reject"$#\#&#'
			-e 's#^\#\(KILL_ROUTE="/sbin/iptables -I INPUT -s \$TARGET\$ -j DROP"\)$#\1#'
		)
		# (each KILL_ROUTE edit changes one line)
		want=$((want + 4))
	fi
	sed "${sedargs[@]}" "$in" >"$out"
	n=$(diff "$in" "$out" | grep -c '^>' || true)
	{
		echo "Debian's portsentry.conf ($DEB_VERSION), mode $mode: changed lines"
		diff "$in" "$out" || true
	} >>"$WORK/logs/portsentry-conf.diff"
	if ((n != want)); then
		START_ERR="Debian's portsentry.conf ($DEB_VERSION) is not as expected: $n of $want edits made (see the script's header)"
		return 1
	fi
}

# ps_start: PortSentry 1.2 (MODES) in the victim, its config and ignore
# file in an overlay on /etc of a mount namespace of its own; sets PS_PID,
# or false with the reason in START_ERR.
ps_start() {
	local dir=$WORK/portsentry rc=0 i pid ipt
	START_ERR="" PS_PID=""
	if [[ -z $DEB_ROOT ]]; then
		START_ERR=$DEB_ERR
		return 1
	fi
	command -v unshare >/dev/null || {
		START_ERR="unshare (util-linux) is missing"
		return 1
	}
	rm -rf "$dir"
	mkdir -p "$dir/etc" "$dir/tmpfs" "$dir/var"
	PSBIN=$DEB_ROOT/usr/sbin/portsentry
	ps_conf reference "$dir/var" "$dir/etc/portsentry.conf" || return 1
	ipt=$(command -v iptables)
	[[ $(readlink -f /sbin/iptables 2>/dev/null) == "$(readlink -f "$ipt")" ]] || {
		START_ERR="Debian's KILL_ROUTE example runs /sbin/iptables, which is not $ipt here"
		return 1
	}
	cp "$DEB_ROOT/etc/portsentry/portsentry.ignore.static" "$dir/etc/portsentry.ignore"
	say "starting PortSentry $DEB_VERSION in $NS_VIC as root: portsentry $MODES (BLOCK_TCP=\"1\", KILL_ROUTE=\"/sbin/iptables -I INPUT -s \$TARGET\$ -j DROP\")"
	# The mount namespace lives as long as PortSentry.
	# shellcheck disable=SC2016 # expanded by sh
	run_wait_to "$WORK/logs/portsentry.out" timeout 20 ip netns exec "$NS_VIC" \
		unshare --mount --propagation private sh -c '
		set -e
		mount -t tmpfs -o mode=0755,size=4m swbn-portsentry "$1"
		mkdir -p "$1/upper/portsentry" "$1/work"
		cp "$2/portsentry.conf" "$2/portsentry.ignore" "$1/upper/portsentry/"
		mount -t overlay swbn-portsentry-etc -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc
		cmp -s "$2/portsentry.conf" /etc/portsentry/portsentry.conf
		shift 2
		exec "$@"' sh "$dir/tmpfs" "$dir/etc" "$PSBIN" "$MODES" || rc=$?
	if ((rc != 0)); then
		START_ERR="portsentry (or its mount namespace) failed, exit $rc: $(tail -n 3 "$WORK/logs/portsentry.out" | tr '\n' ' ')"
		return 1
	fi
	# The parent exited after its fork: find the daemon by its executable.
	for ((i = 0; i < 50; i++)); do
		for pid in $(ip netns pids "$NS_VIC" 2>/dev/null); do
			if [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$PSBIN" ]]; then
				PS_PID=$pid
				break
			fi
		done
		[[ -z $PS_PID ]] || break
		sleep 0.1
	done
	if [[ -z $PS_PID ]]; then
		START_ERR="portsentry $MODES did not stay running (it logs to syslog only)"
		return 1
	fi
	bash "$LAB" adopt portsentry "$PS_PID" >/dev/null
	# Listening once it has its raw socket.
	for ((i = 0; i < 50; i++)); do
		find "/proc/$PS_PID/fd" -lname 'socket:*' 2>/dev/null | grep -q . && break
		sleep 0.1
	done
	alive "$PS_PID" || {
		START_ERR="portsentry exited after its start"
		return 1
	}
	say "PortSentry is running: PID $PS_PID ($(find "/proc/$PS_PID/fd" -lname 'socket:*' 2>/dev/null | wc -l) socket(s))"
}

# ps_stop: end PortSentry (TERM, then KILL): ours, by PID.
ps_stop() {
	local i
	[[ -n $PS_PID ]] || return 0
	kill -TERM "$PS_PID" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		alive "$PS_PID" || break
		sleep 0.1
	done
	if alive "$PS_PID"; then
		say "portsentry (PID $PS_PID) ignored SIGTERM for 5s: SIGKILL"
		kill -KILL "$PS_PID" 2>/dev/null || true
	fi
	PS_PID=""
}

# ps_blocked SRC: PortSentry's KILL_ROUTE rule for SRC is in the victim's
# INPUT chain (of SRC's family).
ps_blocked() {
	local plen=32
	[[ $1 == *:* ]] && plen=128
	ipt "$1" -S INPUT 2>/dev/null | grep -qxF -- "-A INPUT -s $1/$plen -j DROP"
}

# ---- scanwarden's configs -----------------------------------------------

# bench_dir NAME: a fresh daemon directory for the variant; sets DDIR,
# CONF and DLOG.
bench_dir() {
	local name=${1//+/-}
	DDIR=$WORK/daemon-$name
	CONF=$DDIR/scanwarden.conf
	DLOG=$WORK/logs/daemon-$name.log
	mkdir -p "$DDIR"
}

# bench_own: DDIR to SW_USER.
bench_own() {
	chown -R "$SW_USER:$(id -gn "$SW_USER")" "$DDIR"
	chmod 0700 "$DDIR"
	chmod 0600 "$CONF"
}

# bench_config NAME BACKEND TRAP RT: the bench's config for the variant
# (an empty BACKEND, TRAP or RT: no such line).
bench_config() {
	bench_dir "$1"
	{
		cat <<EOF
# scanwarden config of scripts/bench-nmap.sh, variant $1
STATE_DIR="$DDIR/state"
HISTORY_FILE="$DDIR/scanwarden.history"
BLOCKED_FILE="$DDIR/scanwarden.blocked"
IGNORE_FILE=""
KILL_HOSTS_DENY=""
SCAN_TRIGGER="0"
BLOCK_RATE_LIMIT="600"
EOF
		[[ -z $2 ]] || echo "BLOCK_BACKEND=\"$2\""
		[[ -z $3 ]] || echo "KERNEL_TRAP=\"$3\""
		[[ -z $4 ]] || echo "CAPTURE_REALTIME=\"$4\""
	} >"$CONF"
	bench_own
}

# bench_config_debian NAME MODE: Debian's portsentry.conf for the variant
# (ps_conf MODE lab or block) with STATE_DIR and HOSTS_DENY_FILE appended.
bench_config_debian() {
	bench_dir "$1"
	if [[ -z $DEB_ROOT ]]; then
		START_ERR=$DEB_ERR
		return 1
	fi
	ps_conf "$2" "$DDIR" "$CONF" || return 1
	cat >>"$CONF" <<EOF

# scripts/bench-nmap.sh: scanwarden's own keys, for the lab
STATE_DIR="$DDIR/state"
HOSTS_DENY_FILE="$DDIR/hosts.deny"
EOF
	cp "$DEB_ROOT/etc/portsentry/portsentry.ignore.static" "$DDIR/portsentry.ignore"
	: >"$DDIR/hosts.deny"
	bench_own
	chmod 0644 "$DDIR/hosts.deny" "$DDIR/portsentry.ignore"
}

# bench_start_daemon BACKEND: start_daemon of e2e.sh, but a daemon that
# does not come up is no error: false, with the reason in START_ERR. Sets
# BACKEND_LABEL: BACKEND when the config names one, else what the daemon's
# start-up line naming BLOCK_BACKEND says auto chose, else "default".
bench_start_daemon() {
	DAEMON_ARGS=()
	[[ -z $MODES ]] || DAEMON_ARGS=("$MODES")
	if try_start_daemon; then
		local line
		line=$(grep -m 1 -E 'real-time priority|at normal priority' "$DLOG" || true)
		[[ -z $line ]] || say "scanwarden: $(jmsg "$line")"
		line=$(grep -m 1 -F 'BLOCK_BACKEND' "$DLOG" || true)
		[[ -z $line ]] || line=$(jmsg "$line")
		if [[ -n $1 ]]; then
			BACKEND_LABEL=$1
		elif [[ $line =~ BLOCK_BACKEND\ auto:\ ([a-z-]+) ]]; then
			BACKEND_LABEL=auto:${BASH_REMATCH[1]}
		else
			BACKEND_LABEL=default
		fi
		say "backend: ${line:-default (no start-up line names BLOCK_BACKEND)}"
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

# ---- one scan -----------------------------------------------------------

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

# capture_figures PCAP SRC DST ACKS K: "answered before_block drop_ms
# probes" from the victim's capture (see the header for the definitions);
# ACKS 1: the scan's probes carry ACK (ack, maimon); K: the reply-less run.
capture_figures() {
	tcpdump -n -tt -r "$1" 2>/dev/null | awk -v src="$2" -v dst="$3" -v acks="$4" -v K="$5" '
	# ep: address and port of "ADDR.PORT" or "ADDR.PORT:" (IPv4 or IPv6)
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
			if (flags ~ /R/) next               # a reset: no probe
			if (!acks && flags ~ /\./) next     # an ACK where probes have none
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

row() { printf '%-21s %-6s %-42s %9s %12s %8s %7s %9s %s\n' "$@"; }

# bench_scan VARIANT KIND LABEL ARGS ACKS K N: one scan from fresh address
# N.
bench_scan() {
	local variant=$1 kind=$2 label=$3 args=$4 acks=$5 k=$6 n=$7 name xml figs answered before drop_ms probes
	local line dprobes="-" ms="-" by="-" drops cls
	name=${variant//+/-}-$label-$n
	scan_addrs "$n" "$args"
	xml=$WORK/logs/$name.xml
	local capturing=0
	start_capture "$name" "$SRC" && capturing=1
	nmap_cmd "$args $NMAP_OPTS" "$SRC" "$DST" -oX "$xml"
	run_wait_to "$WORK/logs/$name.nmap" timeout 300 ip netns exec "$NS_ATT" "${NMAP[@]}" ||
		say "warning: ${NMAP[*]} failed: $(tail -n 2 "$WORK/logs/$name.nmap")"
	pause "$SETTLE"
	case $kind in
	sw | debian-block) wait_blocked "$SRC" "$SCAN_BLOCK_WAIT" || true ;;
	esac
	if ((capturing)); then
		stop_pid "$CAP_PID" 5 || true
		figs=$(capture_figures "$WORK/logs/$name.pcap" "$SRC" "$DST" "$acks" "$k")
		drops=$(capture_drops "$name")
		[[ -z $drops || $drops == 0 ]] || say "warning: tcpdump dropped $drops packets of the $variant $label scan: its figures are low"
	else
		figs="- - - -"
	fi
	read -r answered before drop_ms probes <<<"$figs"
	if [[ $kind == portsentry ]]; then
		! ps_blocked "$SRC" || by=KILL_ROUTE
	else
		line=$(blocked_lines "$SRC" | head -n 1)
		if [[ -n $line ]]; then
			dprobes=$(jnum "$line" probes)
			ms=$(jnum "$line" block_ms)
			[[ $ms =~ ^[0-9.eE+-]+$ ]] && ms=$(printf '%.1f' "$ms")
			if [[ $line == *'"kernel_trap":true'* ]]; then
				by=kernel
			else
				by=$(jstr "$line" rule_by)
			fi
		fi
	fi
	cls=$(classified "$xml" 2>/dev/null || echo -)
	RESULTS+=("$(row "$variant" "$label" "$cls" "$answered/$probes" "$before" "$drop_ms" "${dprobes:--}" "${ms:--}" "${by:--}")")
	printf '%s\n' "${RESULTS[-1]}"
	local key="$variant|$label"
	[[ -v "SUM_CLS[$key]" ]] || SUMMARY_KEYS+=("$key")
	SUM_CLS[$key]+="${cls%%/*} "
	SUM_BEFORE[$key]+="${before:--} "
	SUM_MS[$key]+="${ms:--} "
	SUM_DROP[$key]+="${drop_ms:--} "
	SUM_BACKEND[$key]=$BACKEND_LABEL
}

# ---- one variant --------------------------------------------------------

# quoted VALUE: "VALUE", or (none) for an empty one (no such line).
quoted() {
	if [[ -n $1 ]]; then printf '"%s"\n' "$1"; else echo "(none)"; fi
}

# bench_variant I: lab, server and daemon (or PortSentry) for VARIANTS[I],
# its scans, and everything stopped and removed again.
bench_variant() {
	local i=$1 name kind backend trap rt j r label args acks k started=$SECONDS ok=1
	IFS='|' read -r name kind backend trap MODES rt <<<"${VARIANTS[$i]}"
	case $kind in
	sw) say "variant $name: BLOCK_BACKEND=$(quoted "$backend") KERNEL_TRAP=$(quoted "$trap") CAPTURE_REALTIME=$(quoted "$rt") ${MODES:-(stealth mode)}" ;;
	debian) say "variant $name: Debian's portsentry.conf as shipped (BLOCK_TCP=\"0\": detection only), stealth mode" ;;
	debian-block) say "variant $name: Debian's portsentry.conf with BLOCK_TCP/BLOCK_UDP=\"1\" and its iptables KILL_ROUTE example, stealth mode" ;;
	portsentry) say "variant $name: PortSentry ${DEB_VERSION:-1.2} $MODES, Debian's portsentry.conf blocking with its iptables KILL_ROUTE example" ;;
	esac
	LAB_UP=1
	bash "$LAB" up >"$WORK/logs/lab.log" 2>&1 || die "lab.sh up failed: $(cat "$WORK/logs/lab.log")"
	for ((j = 1; j <= RUNS * ${#BENCH_SCANS[@]}; j++)); do
		bash "$LAB" attacker-addr "$j" >/dev/null
	done
	start_bg srv-victim "$NS_VIC" "$WORK/logs/srv-victim.log" "$LABSRV" serve \
		-http "$VICTIM4:80,[$VICTIM6]:80" -udp "$VICTIM4:53,[$VICTIM6]:53"
	local srv=$BG_PID
	wait_for_servers
	BACKEND_LABEL=""
	START_ERR=""
	case $kind in
	sw)
		bench_config "$name" "$backend" "$trap" "$rt"
		bench_start_daemon "$backend" || ok=0
		;;
	debian | debian-block)
		local mode=block
		[[ $kind == debian-block ]] || mode=lab
		if bench_config_debian "$name" "$mode"; then
			bench_start_daemon "" || ok=0
		else
			ok=0
		fi
		;;
	portsentry)
		if ps_start; then
			BACKEND_LABEL=KILL_ROUTE
		else
			ok=0
		fi
		;;
	esac
	if ((!ok)); then
		RESULTS+=("$(printf '%-21s skipped: %s' "$name" "$START_ERR")")
		printf '%s\n' "${RESULTS[-1]}"
		SUMMARY_KEYS+=("$name|skipped: $START_ERR")
	else
		pause 1
		for ((r = 0; r < RUNS; r++)); do
			for j in "${!BENCH_SCANS[@]}"; do
				IFS='|' read -r label args acks k <<<"${BENCH_SCANS[$j]}"
				bench_scan "$name" "$kind" "$label" "$args" "$acks" "$k" "$((r * ${#BENCH_SCANS[@]} + j + 1))"
			done
		done
		if [[ $kind == portsentry ]]; then
			ps_stop
		else
			stop_daemon
			((DAEMON_RC == 0)) || say "warning: scanwarden exited with status $DAEMON_RC on SIGTERM"
		fi
	fi
	stop_pid "$srv" 5 || true
	bash "$LAB" down >>"$WORK/logs/lab.log" 2>&1 || say "warning: lab.sh down failed: $(tail -n 3 "$WORK/logs/lab.log")"
	LAB_UP=0
	say "variant $name: $((SECONDS - started)) s"
}

# ---- main ---------------------------------------------------------------


# pick_scans: BENCH_SCANS from SCANS_ALL and BENCH_NMAP_SCANS.
pick_scans() {
	local s v
	BENCH_SCANS=()
	for s in "${SCANS_ALL[@]}"; do
		if [[ -n ${BENCH_NMAP_SCANS:-} ]]; then
			for v in $BENCH_NMAP_SCANS; do
				[[ $v == "${s%%|*}" ]] && BENCH_SCANS+=("$s")
			done
		else
			BENCH_SCANS+=("$s")
		fi
	done
	((${#BENCH_SCANS[@]} > 0)) || die "BENCH_NMAP_SCANS='${BENCH_NMAP_SCANS:-}': want names from: ${SCANS_ALL[*]%%|*}"
}

# pick_variants: the indexes of VARIANTS to run, in PICKED.
pick_variants() {
	local want=${BENCH_NMAP_VARIANTS:-$DEFAULT_VARIANTS} v i found
	PICKED=()
	for v in $want; do
		found=0
		for i in "${!VARIANTS[@]}"; do
			if [[ ${VARIANTS[$i]%%|*} == "$v" ]]; then
				found=1
				PICKED+=("$i")
			fi
		done
		((found)) || die "BENCH_NMAP_VARIANTS: no variant '$v' (see the script's header)"
	done
}

bench_main() {
	local t i kind started=$SECONDS need_deb=0
	pick_scans
	pick_variants
	if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((RUNS < 1 || RUNS * ${#BENCH_SCANS[@]} > 49)); then
		die "BENCH_NMAP_RUNS=$RUNS: want 1 to $((49 / ${#BENCH_SCANS[@]})) with ${#BENCH_SCANS[@]} scans (lab.sh has 49 fresh attacker addresses, one per scan)"
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
	# (PortSentry is registered with the lab: cleanup's lab.sh down ends it)
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	WORK=$(mktemp -d /tmp/scanwarden-bench-nmap.XXXXXX)
	chmod 0711 "$WORK"
	mkdir -m 0700 "$WORK/logs"
	bench_build
	ensure_user
	prepare_xtables_lock
	for i in "${PICKED[@]}"; do
		IFS='|' read -r _ kind _ <<<"${VARIANTS[$i]}"
		[[ $kind == sw ]] || need_deb=1
	done
	if ((need_deb)); then
		ps_fetch || say "Debian's portsentry package: $DEB_ERR (its variants are skipped)"
	fi

	say "nmap against the daemon and PortSentry 1.2, $RUNS run(s): nmap -n -Pn -T4 $NMAP_OPTS, scans: ${BENCH_SCANS[*]%%|*}"
	say "variants: $(for i in "${PICKED[@]}"; do printf '%s ' "${VARIANTS[$i]%%|*}"; done)"
	say "(classified: ports nmap could classify; answered: probes the victim answered/probes that reached it;"
	say " before_block: probes before the first run of $REPLYLESS_RUN unanswered ones, $REPLYLESS_RUN_ACK for ack and maimon; see the script's header)"
	row variant scan "classified (states)" answered before_block drop_ms probes block_ms by
	for i in "${PICKED[@]}"; do
		bench_variant "$i"
	done

	[[ -z ${BENCH_DEBUG_COPY:-} ]] || cp -r "$WORK/logs" "$BENCH_DEBUG_COPY"
	say "every scan ($((SECONDS - started)) s):"
	row variant scan "classified (states)" answered before_block drop_ms probes block_ms by
	for t in "${RESULTS[@]}"; do
		printf '%s\n' "$t"
	done
	summary
	say "bench-nmap took $((SECONDS - started)) s ($(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s)"
}

# med_range LIST: "median (min-max)" of the numbers in LIST ("-" when
# none; "/N" when only N of the runs gave one).
med_range() {
	tr ' ' '\n' <<<"$1" | awk '/^[0-9.]+$/ { v[n++] = $1 + 0 } /./ { all++ }
	END {
		if (n == 0) { print "-"; exit }
		for (i = 1; i < n; i++) for (j = i; j > 0 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
		m = n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
		printf "%g (%g-%g)%s\n", m, v[0], v[n - 1], n < all ? "/" n : ""
	}'
}

# summary: per variant and scan type, the median and range over the runs,
# then the issue's targets.
summary() {
	local key variant label
	say "summary over $RUNS run(s) per scan: median (min-max); \"/N\": only N runs had a value"
	printf '%-21s %-13s %-6s %-20s %-20s %-20s %-20s\n' variant backend scan classified before_block block_ms drop_ms
	for key in "${SUMMARY_KEYS[@]}"; do
		IFS='|' read -r variant label <<<"$key"
		if [[ $label == skipped:* ]]; then
			printf '%-21s %s\n' "$variant" "$label"
			continue
		fi
		printf '%-21s %-13s %-6s %-20s %-20s %-20s %-20s\n' "$variant" "${SUM_BACKEND[$key]:--}" "$label" \
			"$(med_range "${SUM_CLS[$key]}")" "$(med_range "${SUM_BEFORE[$key]}")" \
			"$(med_range "${SUM_MS[$key]}")" "$(med_range "${SUM_DROP[$key]}")"
	done
	say "issue #13's targets (classified ports, medians of 5 runs): default config, stealth mode, nmap's default"
	say "  1000-port scans: syn <= 10, fin <= 10, IPv4 and IPv6 (syn6, fin6); advanced mode (default+atcp) <= 2;"
	say "  ack and maimon scans of 23 ports <= 5. PortSentry 1.2 let 166-420 through."
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	bench_main "$@"
fi
