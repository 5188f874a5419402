#!/usr/bin/env bash
# scripts/record-pcaps.sh: record testdata/pcaps/ from real scans in the lab.
#
# It builds its own lab (scripts/lab.sh, namespaces "swrec-*" unless
# SW_LAB_PREFIX says otherwise), runs labsrv servers in the victim (HTTP :80,
# UDP :53) and in the benign namespace (HTTP :8080, UDP :5353), and for each
# capture: starts tcpdump on the victim's veth, starts benign traffic (the
# benign client to the victim, the victim's own client to the benign
# namespace, IPv4 and IPv6), runs one scan from a fresh attacker address,
# then stops everything. Every file is checked with tcpdump -nr (the scan is
# in it, the benign traffic is in it, every packet source is labelled)
# before anything in testdata/pcaps is replaced; labels.tsv and README.md are
# written from what was run. The lab is torn down on exit, even on failure.
#
# Needs root. Environment: SW_PCAP_OUT (default testdata/pcaps) is where the
# files go; SW_LAB_PREFIX (default swrec-) names the lab's namespaces.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
OUT=${SW_PCAP_OUT:-$REPO/testdata/pcaps}
export SW_LAB_PREFIX=${SW_LAB_PREFIX:-swrec-}
LAB=$REPO/scripts/lab.sh
NS_ATT=${SW_LAB_PREFIX}attacker
NS_VIC=${SW_LAB_PREFIX}victim
NS_BEN=${SW_LAB_PREFIX}benign
IFACE=veth0

VICTIM4=198.51.100.10
VICTIM6=fd00:77::10
BENIGN4=198.51.100.20
BENIGN6=fd00:77::20
SWEEP_TARGETS="198.51.100.10-14"
SWEEP_ADDRS=(198.51.100.11 198.51.100.12 198.51.100.13 198.51.100.14)
DECOYS=(198.51.100.150 198.51.100.151) # held by no namespace
SWEEP_PORT=23

# Benign traffic: one round (2 HTTP GETs, 2 DNS queries per client) every
# BENIGN_INTERVAL; LEAD and TAIL seconds of it before and after each scan.
BENIGN_INTERVAL=400ms
LEAD=1.5
TAIL=1.5
BENIGN_ONLY_SECONDS=20

# How many fresh attacker addresses the captures use (lab.sh attacker-addr).
FRESH_ADDRS=20

WORK=""
CUR=""    # the capture being recorded
declare -A CHECKS=() # file -> what the checks found, for README.md
NEXT_ADDR=1
declare -a BG_PIDS=()     # children started by this script
declare -a FILES=()       # recorded files, in order
declare -A DESCRIPTION=() # file -> what it holds
declare -A COMMANDS=()    # file -> commands run for it
declare -A LABELS=()      # file -> "src role type" lines

log() { printf 'record: %s\n' "$*"; }
die() {
	printf 'record: error: %s\n' "$*" >&2
	exit 1
}

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${BG_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${BG_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	bash "$LAB" down >/dev/null 2>&1 || log "warning: lab.sh down failed; run SW_LAB_PREFIX=$SW_LAB_PREFIX scripts/lab.sh down"
	if [[ -n $WORK && -d $WORK ]]; then
		if ((rc != 0)) && [[ -n ${KEEP_WORK:-} ]]; then
			log "work directory kept: $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	((rc == 0)) || log "failed (exit $rc); testdata left as it was"
	exit "$rc"
}

preflight() {
	((EUID == 0)) || die "needs root (network namespaces, raw sockets): run as root"
	local t
	for t in ip nmap hping3 tcpdump editcap; do
		command -v "$t" >/dev/null || die "$t is missing: run scripts/deps.sh as root"
	done
	if ! command -v go >/dev/null; then
		[[ -x /usr/local/go/bin/go ]] || die "go is missing: run scripts/deps.sh"
		PATH=$PATH:/usr/local/go/bin
	fi
}

# ---- background processes -----------------------------------------------

# start_bg NAME NS LOG CMD...: run CMD in namespace NS in the background,
# register it with the lab (so lab.sh down ends it if we die) and set BG_PID.
start_bg() {
	local name=$1 ns=$2 logf=$3
	shift 3
	ip netns exec "$ns" "$@" </dev/null >"$logf" 2>&1 &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
	bash "$LAB" adopt "$name" "$BG_PID"
}

# wait_bg PID: wait for a child (a signal's trap runs at once, unlike
# during a foreground command), forget it and return its exit status.
wait_bg() {
	local pid=$1 rc=0 p keep=()
	wait "$pid" || rc=$?
	for p in "${BG_PIDS[@]}"; do
		[[ $p == "$pid" ]] || keep+=("$p")
	done
	BG_PIDS=("${keep[@]}")
	return "$rc"
}

# stop_bg PID SIGNAL: signal a child and return its exit status.
stop_bg() {
	kill "-$2" "$1" 2>/dev/null || true
	wait_bg "$1"
}

# pause SECONDS: sleep, interruptibly.
pause() {
	sleep "$1" &
	wait "$!"
}

# ---- captures -----------------------------------------------------------

declare -a CAP_PIDS=() CAP_FILES=() CLIENT_PIDS=()

# tcpdump_start FILE [TCPDUMP-ARGS...]: capture in the victim namespace
# (default: its veth) into $WORK/FILE and wait until tcpdump is listening.
tcpdump_start() {
	local file=$1 i
	shift
	local args=("$@")
	((${#args[@]})) || args=(-i "$IFACE")
	# -Z root: Debian's tcpdump otherwise drops to user tcpdump and cannot
	# write into the private work directory.
	start_bg "tcpdump-${file%.*}" "$NS_VIC" "$WORK/logs/$file.tcpdump" \
		tcpdump -Z root -n -s 0 -U "${args[@]}" -w "$WORK/$file"
	CAP_PIDS+=("$BG_PID")
	CAP_FILES+=("$file")
	for ((i = 0; i < 100; i++)); do
		grep -q 'listening on' "$WORK/logs/$file.tcpdump" && return 0
		kill -0 "$BG_PID" 2>/dev/null || break
		sleep 0.05
	done
	die "tcpdump for $file did not start: $(cat "$WORK/logs/$file.tcpdump")"
}

clients_start() {
	local tag=$1
	start_bg "client-benign" "$NS_BEN" "$WORK/logs/$tag.client-benign" \
		"$WORK/labsrv" client -n 0 -interval "$BENIGN_INTERVAL" \
		-http "http://$VICTIM4/,http://[$VICTIM6]/" -udp "$VICTIM4:53,[$VICTIM6]:53"
	CLIENT_PIDS+=("$BG_PID")
	start_bg "client-victim" "$NS_VIC" "$WORK/logs/$tag.client-victim" \
		"$WORK/labsrv" client -n 0 -interval "$BENIGN_INTERVAL" \
		-http "http://$BENIGN4:8080/,http://[$BENIGN6]:8080/" -udp "$BENIGN4:5353,[$BENIGN6]:5353"
	CLIENT_PIDS+=("$BG_PID")
}

# begin FILE DESCRIPTION [EXTRA-FILE "TCPDUMP-ARGS"]...: start the
# capture on the victim's veth into FILE (and the extra captures of the
# same traffic), then the benign traffic, and wait LEAD seconds.
begin() {
	local file=$1 extra args
	CUR=$file
	FILES+=("$file")
	DESCRIPTION[$file]=$2
	COMMANDS[$file]=""
	log "== $file: $2"
	tcpdump_start "$file"
	shift 2
	while (($# >= 2)); do
		extra=$1
		read -ra args <<<"$2"
		shift 2
		FILES+=("$extra")
		tcpdump_start "$extra" "${args[@]}"
	done
	clients_start "${file%.*}"
	pause "$LEAD"
}

# end: wait TAIL seconds, stop the benign clients (each must have had every
# request answered) and then the captures.
end() {
	local pid rc f i
	pause "$TAIL"
	for pid in "${CLIENT_PIDS[@]}"; do
		rc=0
		stop_bg "$pid" TERM || rc=$?
		((rc == 0)) || die "a benign client failed during $CUR: $(cat "$WORK"/logs/"${CUR%.*}".client-*)"
	done
	grep -h 'labsrv client' "$WORK"/logs/"${CUR%.*}".client-* | sed 's/^/record:   /'
	CLIENT_PIDS=()
	pause 0.5 # the clients' last FINs
	for i in "${!CAP_PIDS[@]}"; do
		f=${CAP_FILES[$i]}
		stop_bg "${CAP_PIDS[$i]}" INT || die "tcpdump for $f failed: $(cat "$WORK/logs/$f.tcpdump")"
		if grep -q '[1-9][0-9]* packets\? dropped by kernel' "$WORK/logs/$f.tcpdump"; then
			die "tcpdump dropped packets in $f: $(cat "$WORK/logs/$f.tcpdump")"
		fi
	done
	CAP_PIDS=() CAP_FILES=()
}

# fresh: set A4 and A6 to the next pre-allocated attacker address pair.
fresh() {
	((NEXT_ADDR <= FRESH_ADDRS)) || die "out of fresh attacker addresses (FRESH_ADDRS=$FRESH_ADDRS)"
	A4=198.51.100.$((100 + NEXT_ADDR))
	A6=fd00:77::$((100 + NEXT_ADDR))
	NEXT_ADDR=$((NEXT_ADDR + 1))
}

# attack FILE CMD...: run CMD in the attacker namespace and note it for
# README.md. nmap must exit 0; hping3 exits 1 when it got no reply.
attack() {
	local file=$1 rc=0
	shift
	log "\$ $*"
	COMMANDS[$file]+="$*"$'\n'
	timeout 600 ip netns exec "$NS_ATT" "$@" >>"$WORK/logs/${file%.*}.attack" 2>&1 &
	BG_PIDS+=("$!")
	wait_bg "$!" || rc=$?
	if [[ $1 == hping3 && $rc == 1 ]]; then
		rc=0
	fi
	((rc == 0)) || die "'$*' failed (exit $rc): $(tail -n 5 "$WORK/logs/${file%.*}.attack")"
	grep -h '^Nmap done' "$WORK/logs/${file%.*}.attack" | tail -n 1 | sed 's/^/record:   /' || true
}

# label FILE SRC ROLE TYPE
label() {
	LABELS[$1]+="$2 $3 $4"$'\n'
}

label_benign() {
	local file=$1 a
	for a in "$BENIGN4" "$BENIGN6" "$VICTIM4" "$VICTIM6"; do
		label "$file" "$a" benign -
	done
}

NMAP=(nmap -n -Pn -T4)

record_nmap_scans() {
	local f
	# The SYN scan, captured three ways at once: on the veth (Ethernet),
	# on "any" (Linux cooked SLL) and on "any" as SLL2.
	fresh
	DESCRIPTION[syn-any-sll.pcap]="the syn.pcap scan captured at the same time with tcpdump -i any -y LINUX_SLL (cooked v1)"
	DESCRIPTION[syn-any-sll2.pcap]="the syn.pcap scan captured at the same time with tcpdump -i any -y LINUX_SLL2 (cooked v2)"
	begin syn.pcap "nmap SYN scan (-sS) of the top 1000 TCP ports" \
		syn-any-sll.pcap "-i any -y LINUX_SLL" syn-any-sll2.pcap "-i any -y LINUX_SLL2"
	attack syn.pcap "${NMAP[@]}" -sS -e "$IFACE" -S "$A4" "$VICTIM4"
	end
	for f in syn.pcap syn-any-sll.pcap syn-any-sll2.pcap; do
		label "$f" "$A4" attacker syn
		label_benign "$f"
		[[ $f == syn.pcap ]] || COMMANDS[$f]=${COMMANDS[syn.pcap]}
	done
	FILES+=(syn.pcapng)
	DESCRIPTION[syn.pcapng]="syn.pcap converted to pcapng (editcap -F pcapng)"
	editcap -F pcapng "$WORK/syn.pcap" "$WORK/syn.pcapng"
	COMMANDS[syn.pcapng]="editcap -F pcapng syn.pcap syn.pcapng"$'\n'
	label syn.pcapng "$A4" attacker syn
	label_benign syn.pcapng

	local spec name flag type desc
	for spec in "fin -sF fin FIN" "null -sN null NULL" "xmas -sX xmas XMAS" \
		"ack -sA ack ACK" "maimon -sM maimon Maimon"; do
		read -r name flag type desc <<<"$spec"
		fresh
		begin "$name.pcap" "nmap $desc scan ($flag) of the top 1000 TCP ports"
		attack "$name.pcap" "${NMAP[@]}" "$flag" -e "$IFACE" -S "$A4" "$VICTIM4"
		end
		label "$name.pcap" "$A4" attacker "$type"
		label_benign "$name.pcap"
	done

	fresh
	begin udp.pcap "nmap UDP scan (-sU) of the top 100 UDP ports, one retry"
	attack udp.pcap "${NMAP[@]}" -sU --top-ports 100 --max-retries 1 -e "$IFACE" -S "$A4" "$VICTIM4"
	end
	label udp.pcap "$A4" attacker udp
	label_benign udp.pcap

	# connect() scans cannot use -e (raw only); -S binds the sockets to the
	# fresh address, which is the attacker's own.
	fresh
	begin connect.pcap "nmap connect scan (-sT) of the top 1000 TCP ports"
	attack connect.pcap "${NMAP[@]}" -sT -S "$A4" "$VICTIM4"
	end
	label connect.pcap "$A4" attacker connect
	label_benign connect.pcap

	fresh
	begin syn-t2.pcap "slow nmap SYN scan (-sS -T2) of the top 100 TCP ports"
	attack syn-t2.pcap nmap -n -Pn -T2 -sS --top-ports 100 -e "$IFACE" -S "$A4" "$VICTIM4"
	end
	label syn-t2.pcap "$A4" attacker syn
	label_benign syn-t2.pcap

	fresh
	begin syn-frag.pcap "nmap SYN scan in 8-byte IP fragments (-sS -f), top 1000 TCP ports"
	attack syn-frag.pcap "${NMAP[@]}" -sS -f -e "$IFACE" -S "$A4" "$VICTIM4"
	end
	label syn-frag.pcap "$A4" attacker syn
	label_benign syn-frag.pcap

	fresh
	begin syn6.pcap "nmap IPv6 SYN scan (-6 -sS) of the top 1000 TCP ports"
	attack syn6.pcap "${NMAP[@]}" -6 -sS -e "$IFACE" -S "$A6" "$VICTIM6"
	end
	label syn6.pcap "$A6" attacker syn
	label_benign syn6.pcap

	fresh
	begin decoy.pcap "nmap SYN scan with two decoys (-sS -D ${DECOYS[0]},${DECOYS[1]},ME)"
	attack decoy.pcap "${NMAP[@]}" -sS -D "${DECOYS[0]},${DECOYS[1]},ME" -e "$IFACE" -S "$A4" "$VICTIM4"
	end
	label decoy.pcap "$A4" attacker syn
	label decoy.pcap "${DECOYS[0]}" attacker syn
	label decoy.pcap "${DECOYS[1]}" attacker syn
	label_benign decoy.pcap

	fresh
	begin sweep.pcap "nmap SYN sweep of one port ($SWEEP_PORT) across $SWEEP_TARGETS"
	attack sweep.pcap "${NMAP[@]}" -sS -p "$SWEEP_PORT" -e "$IFACE" -S "$A4" "$SWEEP_TARGETS"
	end
	label sweep.pcap "$A4" attacker syn
	label_benign sweep.pcap
	for f in "${SWEEP_ADDRS[@]}"; do
		label sweep.pcap "$f" benign -
	done
}

# HPING_RUNS: "type first-port hping3-flags" for hping3.pcap, each run from
# its own fresh address. -Y -X set the two high flag bits (CWR, ECE) alone.
HPING_RUNS=(
	"syn 1000 -S"
	"fin 2000 -F"
	"xmas 3000 -F -P -U"
	"odd 4000 -S -F"
	"odd 5000 -Y -X"
	"udp 6000 --udp"
)
declare -a HPING_ADDRS=() HPING_TYPES=() HPING_FLAGS=()

record_hping3() {
	local spec type port flags
	begin hping3.pcap "hping3 probes from six addresses: SYN, FIN, XMAS, SYN+FIN, CWR+ECE, UDP (40 each)"
	for spec in "${HPING_RUNS[@]}"; do
		read -r type port flags <<<"$spec"
		fresh
		# shellcheck disable=SC2086 # flags is a list of options
		attack hping3.pcap hping3 -I "$IFACE" -a "$A4" $flags -p "++$port" -c 40 -i u10000 "$VICTIM4"
		label hping3.pcap "$A4" attacker "$type"
		HPING_ADDRS+=("$A4") HPING_TYPES+=("$type") HPING_FLAGS+=("$flags")
	done
	end
	label_benign hping3.pcap
}

record_benign() {
	begin benign.pcap "benign traffic only, ${BENIGN_ONLY_SECONDS}s"
	COMMANDS[benign.pcap]="(none: ${BENIGN_ONLY_SECONDS}s of benign traffic only)"$'\n'
	pause "$BENIGN_ONLY_SECONDS"
	end
	label_benign benign.pcap
}

# ---- checks -------------------------------------------------------------

# count FILE FILTER: packets of FILE matching the tcpdump FILTER.
count() {
	tcpdump -nr "$WORK/$1" "$2" 2>/dev/null | wc -l
}

# note FILE TEXT: add TEXT to FILE's line in README.md's checks.
note() {
	CHECKS[$1]+="${CHECKS[$1]:+; }$2"
}

# expect FILE MIN FILTER WHAT [quiet]: at least MIN packets of FILE match
# FILTER; sets N to their number and notes "N WHAT" unless quiet.
expect() {
	N=$(count "$1" "$3")
	if ((N < $2)); then
		die "$1: expected at least $2 $4, found $N (filter: $3)"
	fi
	[[ -n ${5:-} ]] || note "$1" "$N $4"
}

# sources FILE: the distinct source addresses of FILE's IP packets, from
# tcpdump's one-line output (whatever the link type).
sources() {
	tcpdump -nr "$WORK/$1" 2>/dev/null | awk '
	{
		for (i = 1; i < NF; i++) if ($i == "IP" || $i == "IP6") break
		if (i >= NF) next
		s = $(i + 1)
		if ($i == "IP") { if (split(s, p, ".") == 5) s = p[1] "." p[2] "." p[3] "." p[4] }
		else if (index(s, ".")) sub(/\.[^.]*$/, "", s)
		print s
	}' | sort -u
}

TCPF='tcp[tcpflags] & (tcp-fin|tcp-syn|tcp-rst|tcp-push|tcp-ack|tcp-urg)'
# IPv6 TCP without extension headers: flags at byte 40+13.
TCPF6='ip6[6] = 6 and ip6[53] & 0x3f'

# check_benign FILE: the benign traffic, both ways, IPv4 and IPv6.
check_benign() {
	local f=$1 v4 v6
	expect "$f" 2 "src $BENIGN4 and dst $VICTIM4 and tcp dst port 80 and $TCPF = tcp-syn" "benign HTTP connections to the victim" quiet
	v4="$N HTTP connections to :80"
	expect "$f" 2 "src $BENIGN4 and dst $VICTIM4 and udp dst port 53" "benign DNS queries to the victim" quiet
	v4+=", $N DNS queries to :53"
	expect "$f" 2 "src $VICTIM4 and dst $BENIGN4 and tcp dst port 8080 and $TCPF = tcp-syn" "victim outbound HTTP connections" quiet
	v4+=", victim's $N HTTP connections to :8080"
	expect "$f" 2 "src $VICTIM4 and dst $BENIGN4 and udp dst port 5353" "victim outbound UDP queries" quiet
	v4+=" and $N UDP queries to :5353"
	expect "$f" 2 "src $BENIGN6 and dst $VICTIM6 and $TCPF6 = 0x02 and ip6[42:2] = 80" "benign IPv6 HTTP connections to the victim" quiet
	v6="$N"
	expect "$f" 2 "src $BENIGN6 and dst $VICTIM6 and udp dst port 53" "benign IPv6 DNS queries to the victim" quiet
	v6+=", $N"
	expect "$f" 2 "src $VICTIM6 and dst $BENIGN6 and $TCPF6 = 0x02 and ip6[42:2] = 8080" "victim outbound IPv6 HTTP connections" quiet
	v6+=", $N"
	expect "$f" 2 "src $VICTIM6 and dst $BENIGN6 and udp dst port 5353" "victim outbound IPv6 UDP queries" quiet
	v6+=", $N"
	note "$f" "benign IPv4: $v4; benign IPv6: $v6"
}

# attacker_of FILE: the first attacker address labelled in FILE.
attacker_of() {
	awk '$2 == "attacker" { print $1; exit }' <<<"${LABELS[$1]}"
}

# check_format FILE LINKTYPE [pcapng]
check_format() {
	local magic want=a1b2c3d4
	[[ ${3:-} != pcapng ]] || want=0a0d0d0a
	magic=$(od -An -tx4 -N4 "$WORK/$1" | tr -d ' ')
	if [[ $want == a1b2c3d4 && $magic == d4c3b2a1 ]]; then
		magic=a1b2c3d4 # classic pcap written big-endian
	fi
	[[ $magic == "$want" ]] || die "$1: file magic $magic, want ${3:-pcap} ($want)"
	local head
	head=$(tcpdump -nr "$WORK/$1" -c 1 2>&1 >/dev/null || true)
	[[ $head == *"link-type $2 "* ]] || die "$1: link type is not $2: $head"
	note "$1" "${3:-pcap}, link type $2"
}

check_formats() {
	local f
	for f in "${FILES[@]}"; do
		case $f in
		syn-any-sll.pcap) check_format "$f" LINUX_SLL ;;
		syn-any-sll2.pcap) check_format "$f" LINUX_SLL2 ;;
		*.pcapng) check_format "$f" EN10MB pcapng ;;
		*) check_format "$f" EN10MB ;;
		esac
	done
}

check_scans() {
	local f a i
	for f in syn.pcap syn-any-sll.pcap syn-any-sll2.pcap syn.pcapng; do
		a=$(attacker_of "$f")
		expect "$f" 1000 "src $a and dst $VICTIM4 and $TCPF = tcp-syn" "SYN probes"
		expect "$f" 990 "src $VICTIM4 and dst $a and $TCPF = tcp-rst|tcp-ack" "RST/ACK answers"
		expect "$f" 1 "src $VICTIM4 and dst $a and tcp src port 80 and $TCPF = tcp-syn|tcp-ack" "SYN/ACK from :80"
	done
	a=$(attacker_of fin.pcap)
	expect fin.pcap 1000 "src $a and $TCPF = tcp-fin" "FIN probes"
	expect fin.pcap 990 "src $VICTIM4 and dst $a and $TCPF = tcp-rst|tcp-ack" "RST/ACK answers"
	a=$(attacker_of null.pcap)
	expect null.pcap 1000 "src $a and $TCPF = 0" "NULL probes"
	a=$(attacker_of xmas.pcap)
	expect xmas.pcap 1000 "src $a and $TCPF = tcp-fin|tcp-push|tcp-urg" "XMAS probes"
	a=$(attacker_of ack.pcap)
	expect ack.pcap 1000 "src $a and $TCPF = tcp-ack" "ACK probes"
	expect ack.pcap 1000 "src $VICTIM4 and dst $a and $TCPF = tcp-rst" "bare RST answers"
	a=$(attacker_of maimon.pcap)
	expect maimon.pcap 1000 "src $a and $TCPF = tcp-fin|tcp-ack" "FIN/ACK probes"
	expect maimon.pcap 990 "src $VICTIM4 and dst $a and $TCPF = tcp-rst" "bare RST answers"
	a=$(attacker_of udp.pcap)
	expect udp.pcap 100 "src $a and udp" "UDP probes"
	expect udp.pcap 1 "src $VICTIM4 and dst $a and icmp[icmptype] = icmp-unreach and icmp[icmpcode] = 3" "ICMP port unreachables"
	expect udp.pcap 1 "src $VICTIM4 and dst $a and udp src port 53" "DNS answers to the scan"
	a=$(attacker_of connect.pcap)
	expect connect.pcap 1000 "src $a and $TCPF = tcp-syn" "connect() SYNs"
	expect connect.pcap 1 "src $a and tcp dst port 80 and $TCPF = tcp-ack" "completed handshakes to :80"
	a=$(attacker_of syn-t2.pcap)
	expect syn-t2.pcap 100 "src $a and $TCPF = tcp-syn" "SYN probes"
	a=$(attacker_of syn-frag.pcap)
	expect syn-frag.pcap 2000 "src $a and ip[6:2] & 0x3fff != 0" "IP fragments"
	expect syn-frag.pcap 1000 "src $a and ip[6:2] & 0x1fff = 0 and ip[6] & 0x20 != 0" "first fragments"
	a=$(attacker_of syn6.pcap)
	expect syn6.pcap 1000 "src $a and $TCPF6 = 0x02" "IPv6 SYN probes"
	expect syn6.pcap 990 "src $VICTIM6 and dst $a and $TCPF6 = 0x14" "IPv6 RST/ACK answers"
	a=$(attacker_of decoy.pcap)
	for i in "$a" "${DECOYS[@]}"; do
		expect decoy.pcap 1000 "src $i and dst $VICTIM4 and $TCPF = tcp-syn" "SYN probes from $i"
	done
	a=$(attacker_of sweep.pcap)
	for i in "$VICTIM4" "${SWEEP_ADDRS[@]}"; do
		expect sweep.pcap 1 "src $a and dst $i and tcp dst port $SWEEP_PORT and $TCPF = tcp-syn" "SYN to $i:$SWEEP_PORT"
		expect sweep.pcap 1 "src $i and dst $a and $TCPF = tcp-rst|tcp-ack" "RST/ACK from $i"
	done
	local want
	for i in "${!HPING_ADDRS[@]}"; do
		case ${HPING_FLAGS[$i]} in
		-S) want="$TCPF = tcp-syn" ;;
		-F) want="$TCPF = tcp-fin" ;;
		"-F -P -U") want="$TCPF = tcp-fin|tcp-push|tcp-urg" ;;
		"-S -F") want="$TCPF = tcp-syn|tcp-fin" ;;
		"-Y -X") want="tcp[13] = 0xc0" ;;
		--udp) want="udp" ;;
		*) die "no check for hping3 ${HPING_FLAGS[$i]}" ;;
		esac
		expect hping3.pcap 40 "src ${HPING_ADDRS[$i]} and dst $VICTIM4 and $want" "hping3 ${HPING_FLAGS[$i]} probes"
	done
}

# check_labels: each file's IP sources are exactly its labelled addresses.
check_labels() {
	local f want have
	for f in "${FILES[@]}"; do
		want=$(awk 'NF { print $1 }' <<<"${LABELS[$f]}" | sort -u)
		have=$(sources "$f")
		if [[ $want != "$have" ]]; then
			die "$f: packet sources and labels differ:
unlabelled sources: $(comm -13 <(echo "$want") <(echo "$have") | tr '\n' ' ')
labelled but absent: $(comm -23 <(echo "$want") <(echo "$have") | tr '\n' ' ')"
		fi
		log "$f: $(wc -l <<<"$have") sources, all labelled"
		note "$f" "$(wc -l <<<"$have") IP sources, all labelled"
	done
}

# ---- output -------------------------------------------------------------

write_labels() {
	local f src role type
	{
		printf '# file\tsrc\trole\ttype\n'
		for f in "${FILES[@]}"; do
			while read -r src role type; do
				if [[ -n $src ]]; then
					printf '%s\t%s\t%s\t%s\n' "$f" "$src" "$role" "$type"
				fi
			done <<<"${LABELS[$f]}"
		done
	} >"$WORK/labels.tsv"
}

write_readme() {
	local f n size nmapv tcpdumpv hpingv
	nmapv=$(nmap --version | awk 'NR == 1 { print $3 }')
	tcpdumpv=$(tcpdump --version 2>&1 | awk '/^tcpdump/ { print $3 }')
	hpingv=$(dpkg-query -W -f='${Version}' hping3 2>/dev/null || echo unknown)
	{
		cat <<EOF
# Test captures

Recorded by \`scripts/record-pcaps.sh\` (\`make pcaps\`, as root) from real
scans in the network-namespace lab (\`scripts/lab.sh\`): nmap ${nmapv}, hping3
${hpingv} (Debian), tcpdump ${tcpdumpv}, Linux $(uname -r), on $(date -u +%Y-%m-%d).
Do not edit these files by hand; re-record them with \`make pcaps\`.

## How they were recorded

- Lab: a bridge in namespace \`lan\` joins three namespaces by veth pairs:
  the victim (198.51.100.10/24, fd00:77::10/64, plus 198.51.100.11–.14 as
  sweep targets), the benign client (198.51.100.20, fd00:77::20) and the
  attacker (198.51.100.66, fd00:77::66, plus a fresh address
  198.51.100.(100+N) / fd00:77::(100+N) for every scan). No default route,
  no IPv6 DAD and no link-local addresses.
- The victim runs \`labsrv serve\` (HTTP on :80, DNS-like UDP on :53, IPv4 and
  IPv6); the benign namespace runs one too (HTTP :8080, UDP :5353).
- Every capture is \`tcpdump -s 0 -U -w\` on the victim's veth (Ethernet)
  unless said otherwise, with benign traffic running throughout:
  \`labsrv client\` in the benign namespace (an HTTP GET to the victim on a
  new connection and a DNS query to the victim from a new source port, IPv4
  and IPv6, every ${BENIGN_INTERVAL}), and the same from the victim to the benign
  namespace's :8080 and :5353. Benign traffic starts ${LEAD}s before the scan
  and runs ${TAIL}s after it.
- Nothing in them is anonymised or edited; MAC addresses are random veth
  addresses.

## Files

| file | packets | bytes | what |
| --- | ---: | ---: | --- |
EOF
		for f in "${FILES[@]}"; do
			n=$(tcpdump -nr "$WORK/$f" 2>/dev/null | wc -l)
			size=$(stat -c %s "$WORK/$f")
			printf '| %s | %s | %s | %s |\n' "$f" "$n" "$size" "${DESCRIPTION[$f]}"
		done
		cat <<'EOF'

## labels.tsv

One line per source address of an IP packet in each file (ARP carries no IP
source and is not listed): `file`, `src`, `role` (`attacker` or `benign`),
`type` (the scan type a detector should report for an attacker: `syn`, `fin`,
`null`, `xmas`, `ack`, `maimon`, `udp`, `connect` or `odd`; `-` for benign).
The victim's own addresses are benign sources: they answer probes and make
outbound connections. nmap's decoys are attackers. The recorder checks that
each file's sources are exactly its labelled addresses.

## Commands

What ran for each file (nmap and hping3 in the attacker namespace), as
recorded:

EOF
		for f in "${FILES[@]}"; do
			printf -- "- \`%s\`:\n\n" "$f"
			while IFS= read -r n; do
				if [[ -n $n ]]; then
					printf '      %s\n' "$n"
				fi
			done <<<"${COMMANDS[$f]}"
			printf '\n'
		done
		cat <<'EOF'
## Checks made before the files were written

Counts of packets found with `tcpdump -nr FILE FILTER` by the recorder,
which fails when one is too low (see `check_scans` and `check_benign` in
`scripts/record-pcaps.sh`).

EOF
		for f in "${FILES[@]}"; do
			printf -- "- \`%s\`: %s.\n" "$f" "${CHECKS[$f]}"
		done
	} >"$WORK/README.md"
}

install_files() {
	local f
	mkdir -p "$OUT"
	for f in "${FILES[@]}" labels.tsv README.md; do
		cp "$WORK/$f" "$OUT/.$f.tmp"
		mv -f "$OUT/.$f.tmp" "$OUT/$f"
	done
	log "wrote ${#FILES[@]} captures, labels.tsv and README.md to $OUT ($(du -ch "${FILES[@]/#/$OUT/}" | tail -n1 | cut -f1) in captures)"
}

main() {
	preflight
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	WORK=$(mktemp -d /tmp/scanwarden-pcaps.XXXXXX)
	mkdir -p "$WORK/logs"
	log "building labsrv"
	go build -o "$WORK/labsrv" ./scripts/labsrv

	bash "$LAB" up
	local i
	# All fresh attacker addresses now: adding an IPv6 address makes the
	# kernel send MLD reports (from ::), which must not land in a capture.
	for ((i = 1; i <= FRESH_ADDRS; i++)); do
		bash "$LAB" attacker-addr "$i" >/dev/null
	done
	start_bg srv-victim "$NS_VIC" "$WORK/logs/srv-victim" "$WORK/labsrv" serve \
		-http "$VICTIM4:80,[$VICTIM6]:80" -udp "$VICTIM4:53,[$VICTIM6]:53"
	start_bg srv-benign "$NS_BEN" "$WORK/logs/srv-benign" "$WORK/labsrv" serve \
		-http "$BENIGN4:8080,[$BENIGN6]:8080" -udp "$BENIGN4:5353,[$BENIGN6]:5353"
	pause 3 # MLD reports settle; servers listen

	record_nmap_scans
	record_hping3
	record_benign

	log "checking the captures"
	check_formats
	check_scans
	local f
	for f in "${FILES[@]}"; do
		check_benign "$f"
	done
	check_labels
	write_labels
	write_readme
	install_files
}

main "$@"
