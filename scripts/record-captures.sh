#!/usr/bin/env bash
# scripts/record-captures.sh: record testdata/captures/ in the lab.
#
# Real servers and real clients in network namespaces (scripts/lab.sh,
# namespaces "rcd-*" unless SW_LAB_PREFIX says otherwise), captured with
# tcpdump on the victim's veth (both directions):
#
#   imap-client.pcap          IMAP sessions (Python imaplib, curl) to Dovecot on :143
#   nmap-os.pcap              nmap -O against a victim that drops its RSTs and
#                             ICMP port unreachables (iptables OUTPUT)
#   nmap-os6.pcap             nmap -6 -O against the same victim over IPv6 (ip6tables)
#   nmap-os-answering.pcap    nmap -O against a victim that answers normally
#   nmap-os6-answering.pcap   nmap -6 -O against a victim that answers normally
#   ack-maimon.pcap           nmap -sA then nmap -sM of ports 1-23, two sources
#   everyday.pcap             60s of ordinary traffic: HTTP :80/:8080, DNS
#                             (dnsmasq), SSH (OpenSSH), NTP (chrony), IMAP
#                             (Dovecot), one mistyped port, the victim's own
#                             outbound connections; IPv4 and IPv6, three clients
#
# Every file is checked with tcpdump -nr (what was run is in it, every packet
# source is labelled) before anything in testdata/captures is replaced;
# labels.tsv and README.md are written from what was run. The lab, the
# servers and the temporary directory are removed on exit, even on failure.
#
# Needs root. Debian packages: nmap tcpdump iptables curl python3
# dovecot-imapd dnsmasq-base openssh-server openssh-client chrony
# bind9-dnsutils (--install-deps installs the missing ones with apt-get;
# policy-rc.d or the lack of an init keeps their services from starting on
# the host). Environment: SW_CAPTURES_OUT (default testdata/captures) is
# where the files go; SW_LAB_PREFIX (default rcd-) names the namespaces.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
OUT=${SW_CAPTURES_OUT:-$REPO/testdata/captures}
export SW_LAB_PREFIX=${SW_LAB_PREFIX:-rcd-}
LAB=$REPO/scripts/lab.sh
NS_ATT=${SW_LAB_PREFIX}attacker
NS_VIC=${SW_LAB_PREFIX}victim
NS_BEN=${SW_LAB_PREFIX}benign
IFACE=veth0

# Addresses (lab.sh gives the victim .10, the benign namespace .20 and the
# attacker .66; this script adds the benign clients B and C, and lab.sh
# attacker-addr the attacker's fresh .101.. addresses).
VICTIM4=198.51.100.10
VICTIM6=fd00:77::10
A4=198.51.100.20 # client A (lab.sh's benign address)
A6=fd00:77::20
B4=198.51.100.21 # client B
B6=fd00:77::21
C4=198.51.100.22 # client C (IPv4 only)
SRV4=$A4         # the benign namespace's servers (for the victim's outbound traffic)
SRV6=$A6
FRESH_ADDRS=6

PKGS="nmap tcpdump iptables curl python3 dovecot-imapd dnsmasq-base openssh-server openssh-client chrony bind9-dnsutils"
PY=/usr/bin/python3 # Debian's, whatever PATH says

EVERYDAY_SECONDS=60
IMAP_USER=alice
IMAP_PASS=wonderland

WORK=""
CUR=""
NEXT_ADDR=1
declare -a BG_PIDS=()  # long-lived children (servers, tcpdump)
declare -a ACT_PIDS=() # short-lived clients of the current capture
declare -a ACT_WHAT=()
declare -a FILES=()
declare -A DESCRIPTION=() COMMANDS=() LABELS=() CHECKS=() VERDICT=()

log() { printf 'record: %s\n' "$*"; }
die() {
	printf 'record: error: %s\n' "$*" >&2
	exit 1
}

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${ACT_PIDS[@]}" "${BG_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${ACT_PIDS[@]}" "${BG_PIDS[@]}"; do
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
	((rc == 0)) || log "failed (exit $rc); testdata/captures left as it was"
	exit "$rc"
}

# tool_of PACKAGE: a command the package provides, to tell whether it is there.
tool_of() {
	case $1 in
	iptables) echo ip6tables ;;
	python3) echo "$PY" ;;
	dovecot-imapd) echo /usr/lib/dovecot/imap ;;
	dnsmasq-base) echo dnsmasq ;;
	openssh-server) echo /usr/sbin/sshd ;;
	openssh-client) echo ssh-keygen ;;
	chrony) echo chronyd ;;
	bind9-dnsutils) echo dig ;;
	*) echo "$1" ;;
	esac
}

preflight() {
	((EUID == 0)) || die "needs root (network namespaces, raw sockets, iptables): run as root"
	local p missing=()
	for p in $PKGS; do
		command -v "$(tool_of "$p")" >/dev/null 2>&1 || [[ -x $(tool_of "$p") ]] || missing+=("$p")
	done
	if ((${#missing[@]})); then
		if [[ ${INSTALL_DEPS:-0} == 1 ]]; then
			log "installing ${missing[*]}"
			apt-get update -qq
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
		else
			die "missing: ${missing[*]}; install them with:
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}
or run this script with --install-deps"
		fi
	fi
	command -v ip >/dev/null || die "ip (iproute2) is missing"
	if ! command -v go >/dev/null; then
		[[ -x /usr/local/go/bin/go ]] || die "go is missing: run scripts/deps.sh"
		PATH=$PATH:/usr/local/go/bin
	fi
}

# ---- processes ----------------------------------------------------------

# start_bg NAME NS LOG CMD...: run CMD in namespace NS in the background,
# register it with the lab (lab.sh down ends it if we die), set BG_PID.
start_bg() {
	local name=$1 ns=$2 logf=$3
	shift 3
	ip netns exec "$ns" "$@" </dev/null >"$logf" 2>&1 &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
	bash "$LAB" adopt "$name" "$BG_PID"
}

forget() {
	local p keep=()
	for p in "${BG_PIDS[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	BG_PIDS=("${keep[@]}")
}

# stop_bg NAME PID SIGNAL: signal a child, wait for it, return its status.
stop_bg() {
	local rc=0
	kill "-$3" "$2" 2>/dev/null || true
	wait "$2" || rc=$?
	forget "$2"
	bash "$LAB" stop "$1" >/dev/null 2>&1 || true
	return "$rc"
}

pause() {
	sleep "$1" &
	wait "$!"
}

# wait_listen NS PROTO ADDR:PORT: wait until something listens there.
wait_listen() {
	local ns=$1 proto=$2 want=$3 i opt=-ltn
	[[ $proto == udp ]] && opt=-lun
	for ((i = 0; i < 100; i++)); do
		if ip netns exec "$ns" ss -H "$opt" | awk '{ print $4 }' | grep -qxF -- "$want"; then
			return 0
		fi
		sleep 0.05
	done
	die "nothing listens on $proto $want in $ns"
}

# ---- servers ------------------------------------------------------------

start_labsrv() {
	start_bg srv-victim "$NS_VIC" "$WORK/logs/srv-victim" "$WORK/labsrv" serve \
		-http "$VICTIM4:80,[$VICTIM6]:80,$VICTIM4:8080,[$VICTIM6]:8080"
	start_bg srv-benign "$NS_BEN" "$WORK/logs/srv-benign" "$WORK/labsrv" serve \
		-http "$SRV4:8080,[$SRV6]:8080" -udp "$SRV4:5353,[$SRV6]:5353"
	wait_listen "$NS_VIC" tcp "$VICTIM4:80"
	wait_listen "$NS_VIC" tcp "[$VICTIM6]:8080"
	wait_listen "$NS_BEN" udp "[$SRV6]:5353"
}

# dovecot: a throwaway configuration in $WORK/dovecot, mail in a maildir
# there, one passwd-file user, plaintext LOGIN allowed (no TLS in the lab).
start_dovecot() {
	local d=$WORK/dovecot md i
	md=$d/home/$IMAP_USER/Maildir
	mkdir -p "$d/run" "$d/state" "$md/cur" "$md/new" "$md/tmp"
	cat >"$d/dovecot.conf" <<EOF
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
protocols = imap
listen = $VICTIM4, $VICTIM6
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $d/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$d/home/%u
}
EOF
	printf '%s:{PLAIN}%s\n' "$IMAP_USER" "$IMAP_PASS" >"$d/passwd"
	for i in 1 2 3; do
		printf 'From: bob%s@lab.test\r\nTo: %s@lab.test\r\nSubject: lab message %s\r\nDate: Tue, 24 Nov 2026 10:0%s:00 +0000\r\nMessage-ID: <%s.lab@lab.test>\r\n\r\nHello %s, this is message %s.\r\n' \
			"$i" "$IMAP_USER" "$i" "$i" "$i" "$IMAP_USER" "$i" >"$md/cur/$i.lab:2,S"
	done
	chown -R nobody:nogroup "$d/home"
	start_bg dovecot "$NS_VIC" "$WORK/logs/dovecot" dovecot -F -c "$d/dovecot.conf"
	wait_listen "$NS_VIC" tcp "$VICTIM4:143"
	wait_listen "$NS_VIC" tcp "[$VICTIM6]:143"
}

# sshd: its own host key and config; the clients log in as root with a
# throwaway key and run one command.
start_sshd() {
	local d=$WORK/ssh
	mkdir -p "$d"
	ssh-keygen -q -t ed25519 -N '' -C lab-host -f "$d/hostkey"
	ssh-keygen -q -t ed25519 -N '' -C lab-client -f "$d/clientkey"
	cp "$d/clientkey.pub" "$d/authorized_keys"
	cat >"$d/sshd_config" <<EOF
ListenAddress $VICTIM4
ListenAddress $VICTIM6
Port 22
HostKey $d/hostkey
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
EOF
	mkdir -p /run/sshd # sshd's privilege separation directory
	start_bg sshd "$NS_VIC" "$WORK/logs/sshd" /usr/sbin/sshd -D -e -f "$d/sshd_config"
	wait_listen "$NS_VIC" tcp "$VICTIM4:22"
	wait_listen "$NS_VIC" tcp "[$VICTIM6]:22"
}

# dnsmasq: authoritative for lab.test only, no upstream, no DHCP.
start_dnsmasq() {
	start_bg dnsmasq "$NS_VIC" "$WORK/logs/dnsmasq" dnsmasq --keep-in-foreground \
		--log-queries --log-facility=- --conf-file=/dev/null --no-resolv --no-hosts --no-poll \
		--bind-interfaces --listen-address="$VICTIM4,$VICTIM6" --except-interface=lo --port=53 \
		--pid-file="$WORK/dnsmasq.pid" --user=nobody --group=nogroup --local=/lab.test/ \
		--host-record="www.lab.test,$VICTIM4,$VICTIM6" --host-record="mail.lab.test,$VICTIM4,$VICTIM6" \
		--mx-host=lab.test,mail.lab.test,10
	wait_listen "$NS_VIC" udp "$VICTIM4:53"
	wait_listen "$NS_VIC" udp "[$VICTIM6]:53"
}

# chronyd: an NTP server from its local clock (-x: it never touches the
# system clock).
start_chronyd() {
	cat >"$WORK/chrony.conf" <<EOF
local stratum 8
allow 198.51.100.0/24
allow fd00:77::/64
bindaddress $VICTIM4
bindaddress $VICTIM6
port 123
cmdport 0
pidfile $WORK/chronyd.pid
EOF
	start_bg chronyd "$NS_VIC" "$WORK/logs/chronyd" chronyd -d -x -u root -f "$WORK/chrony.conf"
	wait_listen "$NS_VIC" udp "$VICTIM4:123"
	wait_listen "$NS_VIC" udp "[$VICTIM6]:123"
}

write_imap_client() {
	cat >"$WORK/imap-client.py" <<'EOF'
"""One IMAP session with Python's imaplib: LOGIN, SELECT, FETCH, LOGOUT."""
import imaplib
import socket
import sys

src, host, user, password = sys.argv[1:5]


class Client(imaplib.IMAP4):
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(src, 0))


m = Client(host, 143, timeout=10)
print(m.capability())
print(m.login(user, password))
typ, data = m.select("INBOX")
print(typ, data)
print(m.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])"))
print(m.fetch(data[0].decode(), "(BODY.PEEK[TEXT])"))
print(m.close())
print(m.logout())
EOF
}

# ---- clients ------------------------------------------------------------

# client WHO ACTION ARGS...: start one client action in the background (in
# the benign namespace, or the victim's for WHO=victim) and note it.
# Actions: http SRC URL...; mistype SRC URL (must be refused); dns SRC
# SERVER NAME TYPE; dns5353 SRC SERVER NAME; ssh SRC HOST; ntp SRC SERVER;
# imap SRC HOST; curlimap SRC HOST.
client() {
	local ns=$NS_BEN what=$* act=$1 src=$2
	shift 2
	local -a cmd
	case $act in
	http) cmd=(curl -sS --max-time 5 --interface "$src" "$@") ;;
	mistype) cmd=(curl -sS --max-time 5 --interface "$src" "$@") ;;
	dns) cmd=(dig +time=2 +tries=1 -b "$src" "@$1" "$2" "$3") ;;
	dns5353) cmd=(dig +time=2 +tries=1 -b "$src" -p 5353 "@$1" "$2") ;;
	ssh) cmd=(ssh -F /dev/null -i "$WORK/ssh/clientkey" -o UserKnownHostsFile="$WORK/ssh/known_hosts"
		-o StrictHostKeyChecking=accept-new -o BatchMode=yes -o ConnectTimeout=5 -b "$src"
		"root@$1" 'uname -sr; id -un; date -u') ;;
	ntp) cmd=(chronyd -Q -u root "server $1 iburst maxsamples 1" "bindacqaddress $src"
		"pidfile $WORK/chronyd-client.pid" "cmdport 0" "port 0") ;;
	imap) cmd=("$PY" "$WORK/imap-client.py" "$src" "$1" "$IMAP_USER" "$IMAP_PASS") ;;
	curlimap) cmd=(curl -sS --max-time 10 --interface "$src" -u "$IMAP_USER:$IMAP_PASS"
		"imap://$1/INBOX;UID=2") ;;
	*) die "unknown client action $act" ;;
	esac
	[[ $src == "$VICTIM4" || $src == "$VICTIM6" ]] && ns=$NS_VIC
	local n=${#ACT_PIDS[@]}
	{
		printf '$ %s\n' "${cmd[*]}"
		timeout 30 ip netns exec "$ns" "${cmd[@]}" </dev/null 2>&1
	} >"$WORK/logs/${CUR%.*}.act$n" 2>&1 &
	ACT_PIDS+=("$!")
	ACT_WHAT+=("$what")
	local text="" w
	for w in "${cmd[@]}"; do
		[[ $w != *[\ \;]* ]] || w="'$w'"
		text+="${text:+ }$w"
	done
	text=${text//$WORK/\$WORK}
	COMMANDS[$CUR]+="$(printf '%s%s: %s' "${SCHED_T:+t=${SCHED_T}s }" "$([[ $ns == "$NS_VIC" ]] && echo victim || echo benign)" "$text")"$'\n'
}

# clients_wait: every client action of this capture ended as it should
# (mistype: curl's 7, "could not connect"; everything else: 0).
clients_wait() {
	local i rc want
	for i in "${!ACT_PIDS[@]}"; do
		rc=0
		wait "${ACT_PIDS[$i]}" || rc=$?
		want=0
		[[ ${ACT_WHAT[$i]} == mistype* ]] && want=7
		((rc == want)) || die "$CUR: client '${ACT_WHAT[$i]}' exited $rc, want $want: $(tail -n 5 "$WORK/logs/${CUR%.*}.act$i")"
	done
	ACT_PIDS=() ACT_WHAT=()
}

# schedule ENTRY...: each entry is "SECONDS ACTION ARGS..."; run each action
# at its second after the call (entries in time order).
schedule() {
	local - start e t now
	set -f # the URLs' [IPv6] are no glob patterns
	start=$(date +%s.%N)
	for e in "$@"; do
		read -r t e <<<"$e"
		now=$(date +%s.%N)
		local d
		d=$(awk -v s="$start" -v t="$t" -v n="$now" 'BEGIN { d = s + t - n; printf "%.3f", (d > 0 ? d : 0) }')
		pause "$d"
		# shellcheck disable=SC2086 # e is ACTION ARGS, split on purpose
		SCHED_T=$t client $e
	done
}

# ---- captures -----------------------------------------------------------

# begin FILE DESCRIPTION: start tcpdump on the victim's veth into FILE.
begin() {
	local file=$1 i
	CUR=$file
	FILES+=("$file")
	DESCRIPTION[$file]=$2
	COMMANDS[$file]=""
	log "== $file: $2"
	# -Z root: Debian's tcpdump otherwise drops to user tcpdump and cannot
	# write into the private work directory.
	start_bg "tcpdump" "$NS_VIC" "$WORK/logs/$file.tcpdump" \
		tcpdump -Z root -n -s 0 -U -i "$IFACE" -w "$WORK/$file"
	CAP_PID=$BG_PID
	for ((i = 0; i < 100; i++)); do
		grep -q 'listening on' "$WORK/logs/$file.tcpdump" && return 0
		kill -0 "$CAP_PID" 2>/dev/null || break
		sleep 0.05
	done
	die "tcpdump for $file did not start: $(cat "$WORK/logs/$file.tcpdump")"
}

# background_start: light benign traffic during the nmap captures: client
# A fetches http://victim/ over IPv4 and IPv6 every second, and the victim
# fetches the benign namespace's :8080 and asks its :5353 every second.
background_start() {
	# (-src: the benign namespace has several addresses of each family)
	start_bg bg-benign4 "$NS_BEN" "$WORK/logs/${CUR%.*}.bg-benign4" "$WORK/labsrv" client -n 0 -interval 1s \
		-src "$A4" -http "http://$VICTIM4/"
	BGC_BEN4=$BG_PID
	start_bg bg-benign6 "$NS_BEN" "$WORK/logs/${CUR%.*}.bg-benign6" "$WORK/labsrv" client -n 0 -interval 1s \
		-src "$A6" -http "http://[$VICTIM6]/"
	BGC_BEN6=$BG_PID
	start_bg bg-victim "$NS_VIC" "$WORK/logs/${CUR%.*}.bg-victim" "$WORK/labsrv" client -n 0 -interval 1s \
		-http "http://$SRV4:8080/,http://[$SRV6]:8080/" -udp "$SRV4:5353,[$SRV6]:5353"
	BGC_VIC=$BG_PID
	COMMANDS[$CUR]+="benign: labsrv client -n 0 -interval 1s -src $A4 -http http://$VICTIM4/ (throughout)"$'\n'
	COMMANDS[$CUR]+="benign: labsrv client -n 0 -interval 1s -src $A6 -http http://[$VICTIM6]/ (throughout)"$'\n'
	COMMANDS[$CUR]+="victim: labsrv client -n 0 -interval 1s -http http://$SRV4:8080/,http://[$SRV6]:8080/ -udp $SRV4:5353,[$SRV6]:5353 (throughout)"$'\n'
	pause 1.5
}

background_stop() {
	pause 1.5
	stop_bg bg-benign4 "$BGC_BEN4" TERM || die "benign background client failed during $CUR: $(cat "$WORK/logs/${CUR%.*}.bg-benign4")"
	stop_bg bg-benign6 "$BGC_BEN6" TERM || die "benign background client failed during $CUR: $(cat "$WORK/logs/${CUR%.*}.bg-benign6")"
	stop_bg bg-victim "$BGC_VIC" TERM || die "victim background client failed during $CUR: $(cat "$WORK/logs/${CUR%.*}.bg-victim")"
	grep -h 'labsrv client' "$WORK/logs/${CUR%.*}".bg-* | sed 's/^/record:   /' || true
}

# end: stop the capture after the last packets.
end() {
	pause 0.5
	stop_bg tcpdump "$CAP_PID" INT || die "tcpdump for $CUR failed: $(cat "$WORK/logs/$CUR.tcpdump")"
	if grep -q '[1-9][0-9]* packets\? dropped by kernel' "$WORK/logs/$CUR.tcpdump"; then
		die "tcpdump dropped packets in $CUR: $(cat "$WORK/logs/$CUR.tcpdump")"
	fi
}

fresh() {
	((NEXT_ADDR <= FRESH_ADDRS)) || die "out of fresh attacker addresses"
	X4=198.51.100.$((100 + NEXT_ADDR))
	X6=fd00:77::$((100 + NEXT_ADDR))
	NEXT_ADDR=$((NEXT_ADDR + 1))
}

# attack CMD...: run CMD in the attacker namespace (nmap must exit 0).
attack() {
	local rc=0
	log "\$ $*"
	COMMANDS[$CUR]+="attacker: $*"$'\n'
	timeout 600 ip netns exec "$NS_ATT" "$@" </dev/null >>"$WORK/logs/${CUR%.*}.attack" 2>&1 &
	BG_PIDS+=("$!")
	wait "$!" || rc=$?
	forget "$!"
	((rc == 0)) || die "'$*' failed (exit $rc): $(tail -n 5 "$WORK/logs/${CUR%.*}.attack")"
	grep -h '^Nmap done' "$WORK/logs/${CUR%.*}.attack" | tail -n 1 | sed 's/^/record:   /' || true
}

label() {
	LABELS[$1]+="$2 $3 $4"$'\n'
}

label_benign() {
	local f=$1 a
	shift
	for a in "$@"; do
		label "$f" "$a" benign -
	done
}

DROP_RULES=(
	"iptables -p tcp --tcp-flags RST RST -j DROP"
	"iptables -p icmp --icmp-type port-unreachable -j DROP"
	"ip6tables -p tcp --tcp-flags RST RST -j DROP"
	"ip6tables -p ipv6-icmp --icmpv6-type port-unreachable -j DROP"
)

# victim_drops add|del: the victim's OUTPUT rules that silence closed ports.
victim_drops() {
	local r op=-A
	[[ $1 == del ]] && op=-D
	for r in "${DROP_RULES[@]}"; do
		# shellcheck disable=SC2086 # r is a command line
		ip netns exec "$NS_VIC" ${r%% *} "$op" OUTPUT ${r#* }
	done
}

drop_rules_text() {
	local r
	for r in "${DROP_RULES[@]}"; do
		printf 'victim: %s -A OUTPUT %s\n' "${r%% *}" "${r#* }"
	done
}

OS_PORTS=22,80,143

record_nmap_os() {
	local drop fam file desc
	for drop in 1 0; do
		((drop)) && victim_drops add
		for fam in 4 6; do
			fresh
			local six=""
			[[ $fam == 4 ]] || six=6
			if ((drop)); then
				file=nmap-os$six.pcap
				desc="nmap -O (OS detection) -p $OS_PORTS against a victim that drops its RSTs and ICMP port unreachables, IPv$fam"
			else
				file=nmap-os$six-answering.pcap
				desc="nmap -O (OS detection) -p $OS_PORTS against a victim that answers normally, IPv$fam"
			fi
			begin "$file" "$desc"
			((drop)) && COMMANDS[$file]+="$(drop_rules_text)"$'\n'
			background_start
			if [[ $fam == 4 ]]; then
				attack nmap -n -Pn -O -p "$OS_PORTS" -e "$IFACE" -S "$X4" "$VICTIM4"
				label "$file" "$X4" attacker any
				OSADDR[$file]=$X4
			else
				attack nmap -6 -n -Pn -O -p "$OS_PORTS" -e "$IFACE" -S "$X6" "$VICTIM6"
				label "$file" "$X6" attacker any
				OSADDR[$file]=$X6
			fi
			background_stop
			end
			label_benign "$file" "$A4" "$A6" "$VICTIM4" "$VICTIM6"
			VERDICT[$file]="alert on ${OSADDR[$file]} (a scanner: OS fingerprinting probes, odd flag combinations, a UDP probe to a closed port); no alert on $A4, $A6, $VICTIM4, $VICTIM6"
		done
		((drop)) && victim_drops del
	done
	return 0
}
declare -A OSADDR=()

record_ack_maimon() {
	local f=ack-maimon.pcap
	begin "$f" "nmap ACK scan (-sA) then Maimon scan (-sM) of ports 1-23 from two addresses, victim answering"
	background_start
	fresh
	ACK_ADDR=$X4
	attack nmap -n -Pn -T4 -sA -p 1-23 -e "$IFACE" -S "$X4" "$VICTIM4"
	pause 2
	fresh
	MAIMON_ADDR=$X4
	attack nmap -n -Pn -T4 -sM -p 1-23 -e "$IFACE" -S "$X4" "$VICTIM4"
	background_stop
	end
	label "$f" "$ACK_ADDR" attacker ack
	label "$f" "$MAIMON_ADDR" attacker maimon
	label_benign "$f" "$A4" "$A6" "$VICTIM4" "$VICTIM6"
	VERDICT[$f]="alert on $ACK_ADDR (ACK scan, 23 ports) and on $MAIMON_ADDR (Maimon scan, 23 ports); no alert on $A4, $A6, $VICTIM4, $VICTIM6"
}

record_imap() {
	local f=imap-client.pcap
	begin "$f" "IMAP sessions (LOGIN, SELECT, FETCH, LOGOUT) to Dovecot on :143 from Python imaplib and curl, four IPv4 and one IPv6, 4s apart"
	pause 1
	schedule \
		"0 imap $A4 $VICTIM4" \
		"4 curlimap $B4 $VICTIM4" \
		"8 imap $A4 $VICTIM4" \
		"12 imap $A6 $VICTIM6" \
		"16 imap $C4 $VICTIM4"
	clients_wait
	pause 2
	end
	label_benign "$f" "$A4" "$A6" "$B4" "$C4" "$VICTIM4" "$VICTIM6"
	VERDICT[$f]="no alert: every source is benign (IMAP clients and the server)"
}

record_everyday() {
	local f=everyday.pcap
	begin "$f" "${EVERYDAY_SECONDS}s of ordinary traffic from three clients and the victim itself: HTTP :80/:8080, DNS, SSH, NTP, IMAP, one mistyped port; IPv4 and IPv6"
	pause 1
	schedule \
		"0 http $A4 http://$VICTIM4/ http://$VICTIM4:8080/" \
		"1 dns $B4 $VICTIM4 www.lab.test A" \
		"2 http $VICTIM4 http://$SRV4:8080/" \
		"3 ntp $C4 $VICTIM4" \
		"4 dns $A6 $VICTIM6 www.lab.test AAAA" \
		"5 http $B6 http://[$VICTIM6]/" \
		"6 ssh $C4 $VICTIM4" \
		"8 imap $A4 $VICTIM4" \
		"9 dns5353 $VICTIM4 $SRV4 update.lab.test" \
		"10 http $B4 http://$VICTIM4:8080/ http://$VICTIM4:8080/index.html" \
		"12 dns $C4 $VICTIM4 lab.test MX" \
		"13 http $A6 http://[$VICTIM6]:8080/" \
		"15 mistype $B4 http://$VICTIM4:8008/" \
		"16 http $B4 http://$VICTIM4:8080/" \
		"18 http $VICTIM6 http://[$SRV6]:8080/" \
		"19 ntp $A6 $VICTIM6" \
		"21 http $C4 http://$VICTIM4/" \
		"23 dns $B4 $VICTIM4 nosuch.lab.test A" \
		"24 ssh $A6 $VICTIM6" \
		"27 curlimap $C4 $VICTIM4" \
		"28 dns5353 $VICTIM6 $SRV6 update.lab.test" \
		"30 http $A4 http://$VICTIM4/" \
		"31 dns $B6 $VICTIM6 mail.lab.test AAAA" \
		"33 ntp $C4 $VICTIM4" \
		"35 imap $A6 $VICTIM6" \
		"36 http $B6 http://[$VICTIM6]:8080/" \
		"38 http $VICTIM4 http://$SRV4:8080/" \
		"39 dns $C4 $VICTIM4 www.lab.test A" \
		"41 dns $A4 $VICTIM4 www.lab.test A" \
		"42 ssh $B4 $VICTIM4" \
		"45 http $C4 http://$VICTIM4:8080/" \
		"47 http $A4 http://$VICTIM4/ http://$VICTIM4:8080/" \
		"48 dns5353 $VICTIM4 $SRV4 update.lab.test" \
		"50 imap $B4 $VICTIM4" \
		"52 dns $C4 $VICTIM4 mail.lab.test A" \
		"54 ntp $A4 $VICTIM4" \
		"55 http $B6 http://[$VICTIM6]/" \
		"57 http $VICTIM6 http://[$SRV6]:8080/" \
		"$EVERYDAY_SECONDS http $C4 http://$VICTIM4/"
	clients_wait
	pause 2
	end
	label_benign "$f" "$A4" "$A6" "$B4" "$B6" "$C4" "$VICTIM4" "$VICTIM6"
	VERDICT[$f]="no alert: every source is benign ($B4 mistypes a port once, gets a RST and then uses the right one)"
}

# ---- checks -------------------------------------------------------------

count() {
	tcpdump -nr "$WORK/$1" "$2" 2>/dev/null | wc -l
}

note() {
	CHECKS[$1]+="${CHECKS[$1]:+; }$2"
}

# expect FILE MIN FILTER WHAT [MAX]: MIN (to MAX) packets of FILE match FILTER.
expect() {
	N=$(count "$1" "$3")
	if ((N < $2)); then
		die "$1: expected at least $2 $4, found $N (filter: $3)"
	fi
	if [[ -n ${5:-} ]] && ((N > $5)); then
		die "$1: expected at most $5 $4, found $N (filter: $3)"
	fi
	note "$1" "$N $4"
}

# sources FILE: the distinct source addresses of FILE's IP packets.
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
# IPv6 TCP without extension headers: flags at byte 40+13, ports at 40 and 42.
TCPF6='ip6[6] = 6 and ip6[53] & 0x3f'

check_files() {
	local f a
	for f in "${FILES[@]}"; do
		local head
		head=$(tcpdump -nr "$WORK/$f" -c 1 2>&1 >/dev/null || true)
		[[ $head == *"link-type EN10MB "* ]] || die "$f: not an Ethernet pcap: $head"
		note "$f" "pcap, link type EN10MB"
	done

	f=imap-client.pcap
	expect "$f" 4 "ip and dst port 143 and $TCPF = tcp-syn" "IPv4 connections to :143"
	expect "$f" 1 "$TCPF6 = 0x02 and ip6[42:2] = 143" "IPv6 connections to :143"
	expect "$f" 4 "src $VICTIM4 and tcp src port 143 and tcp[((tcp[12] >> 4) * 4):4] = 0x2a204f4b" "IPv4 IMAP segments starting \"* OK\""
	expect "$f" 0 "src $VICTIM4 and $TCPF & tcp-rst != 0" "RSTs from the server" 0

	for f in nmap-os.pcap nmap-os-answering.pcap; do
		a=${OSADDR[$f]}
		expect "$f" 6 "src $a and dst port 80 and $TCPF = tcp-syn" "SYNs to the open port :80"
		expect "$f" 2 "src $a and (dst port 22 or dst port 143) and tcp" "TCP probes to the closed ports :22 and :143"
		expect "$f" 1 "src $a and $TCPF = 0" "NULL probes (T2)"
		expect "$f" 1 "src $a and $TCPF = tcp-syn|tcp-fin|tcp-push|tcp-urg" "SYN/FIN/PSH/URG probes (T3)"
		expect "$f" 1 "src $a and $TCPF = tcp-fin|tcp-push|tcp-urg" "FIN/PSH/URG probes (T7)"
		expect "$f" 1 "src $a and udp" "UDP probes (U1)"
		expect "$f" 2 "src $a and icmp[icmptype] = icmp-echo" "ICMP echo probes (IE)"
		expect "$f" 1 "src $VICTIM4 and dst $a and tcp src port 80 and $TCPF = tcp-syn|tcp-ack" "SYN/ACKs from :80"
	done
	f=nmap-os.pcap
	expect "$f" 0 "src $VICTIM4 and $TCPF & tcp-rst != 0" "RSTs from the victim" 0
	expect "$f" 0 "src $VICTIM4 and icmp[icmptype] = icmp-unreach" "ICMP unreachables from the victim" 0
	f=nmap-os-answering.pcap
	expect "$f" 2 "src $VICTIM4 and dst ${OSADDR[$f]} and $TCPF & tcp-rst != 0" "RSTs from the victim"
	expect "$f" 1 "src $VICTIM4 and dst ${OSADDR[$f]} and icmp[icmptype] = icmp-unreach and icmp[icmpcode] = 3" "ICMP port unreachables from the victim"

	for f in nmap-os6.pcap nmap-os6-answering.pcap; do
		a=${OSADDR[$f]}
		expect "$f" 6 "src $a and $TCPF6 = 0x02 and ip6[42:2] = 80" "IPv6 SYNs to the open port :80"
		expect "$f" 2 "src $a and ip6[6] = 6 and (ip6[42:2] = 22 or ip6[42:2] = 143)" "IPv6 TCP probes to the closed ports :22 and :143"
		expect "$f" 1 "src $a and $TCPF6 = 0" "IPv6 NULL probes (T2)"
		expect "$f" 1 "src $a and udp" "IPv6 UDP probes (U1)"
		expect "$f" 2 "src $a and ip6[6] = 0" "probes with a hop-by-hop header (the ICMPv6 echo probes IE1, IE2)"
		expect "$f" 1 "src $VICTIM6 and dst $a and $TCPF6 = 0x12" "IPv6 SYN/ACKs from :80"
	done
	f=nmap-os6.pcap
	expect "$f" 0 "src $VICTIM6 and $TCPF6 & 0x04 != 0" "IPv6 RSTs from the victim" 0
	expect "$f" 0 "src $VICTIM6 and icmp6 and ip6[40] = 1 and ip6[41] = 4" "ICMPv6 port unreachables from the victim" 0
	f=nmap-os6-answering.pcap
	expect "$f" 2 "src $VICTIM6 and dst ${OSADDR[$f]} and $TCPF6 & 0x04 != 0" "IPv6 RSTs from the victim"
	expect "$f" 1 "src $VICTIM6 and dst ${OSADDR[$f]} and icmp6 and ip6[40] = 1 and ip6[41] = 4" "ICMPv6 port unreachables from the victim"

	f=ack-maimon.pcap
	expect "$f" 23 "src $ACK_ADDR and $TCPF = tcp-ack" "ACK probes from $ACK_ADDR"
	expect "$f" 23 "src $VICTIM4 and dst $ACK_ADDR and $TCPF = tcp-rst" "RSTs to $ACK_ADDR"
	expect "$f" 23 "src $MAIMON_ADDR and $TCPF = tcp-fin|tcp-ack" "FIN/ACK probes from $MAIMON_ADDR"
	expect "$f" 23 "src $VICTIM4 and dst $MAIMON_ADDR and $TCPF = tcp-rst" "RSTs to $MAIMON_ADDR"

	for f in nmap-os.pcap nmap-os6.pcap nmap-os-answering.pcap nmap-os6-answering.pcap ack-maimon.pcap; do
		expect "$f" 2 "src $A4 and dst $VICTIM4 and tcp dst port 80 and $TCPF = tcp-syn" "benign HTTP connections (IPv4)"
		expect "$f" 2 "src $A6 and dst $VICTIM6 and $TCPF6 = 0x02 and ip6[42:2] = 80" "benign HTTP connections (IPv6)"
		expect "$f" 2 "src $VICTIM4 and dst $SRV4 and tcp dst port 8080 and $TCPF = tcp-syn" "victim outbound HTTP connections (IPv4)"
		expect "$f" 2 "src $VICTIM6 and dst $SRV6 and udp dst port 5353" "victim outbound UDP queries (IPv6)"
	done

	f=everyday.pcap
	expect "$f" 8 "dst $VICTIM4 and (tcp dst port 80 or tcp dst port 8080) and $TCPF = tcp-syn" "IPv4 HTTP connections to :80/:8080"
	expect "$f" 4 "dst $VICTIM6 and $TCPF6 = 0x02 and (ip6[42:2] = 80 or ip6[42:2] = 8080)" "IPv6 HTTP connections to :80/:8080"
	expect "$f" 8 "(dst $VICTIM4 or dst $VICTIM6) and udp dst port 53" "DNS queries to :53"
	expect "$f" 8 "(src $VICTIM4 or src $VICTIM6) and udp src port 53" "DNS answers"
	expect "$f" 3 "(dst $VICTIM4 and tcp dst port 22 and $TCPF = tcp-syn) or (dst $VICTIM6 and $TCPF6 = 0x02 and ip6[42:2] = 22)" "SSH connections"
	expect "$f" 4 "(dst $VICTIM4 or dst $VICTIM6) and udp dst port 123" "NTP requests"
	expect "$f" 4 "(src $VICTIM4 or src $VICTIM6) and udp src port 123" "NTP answers"
	expect "$f" 4 "(dst $VICTIM4 and tcp dst port 143 and $TCPF = tcp-syn) or (dst $VICTIM6 and $TCPF6 = 0x02 and ip6[42:2] = 143)" "IMAP connections"
	expect "$f" 1 "src $B4 and tcp dst port 8008 and $TCPF = tcp-syn" "SYNs to the mistyped port 8008" 1
	expect "$f" 1 "src $VICTIM4 and tcp src port 8008 and $TCPF = tcp-rst|tcp-ack" "RST/ACKs from :8008" 1
	expect "$f" 4 "(src $VICTIM4 and dst $SRV4 and tcp dst port 8080 and $TCPF = tcp-syn) or (src $VICTIM6 and dst $SRV6 and $TCPF6 = 0x02 and ip6[42:2] = 8080)" "victim outbound HTTP connections"
	expect "$f" 3 "(src $VICTIM4 or src $VICTIM6) and udp dst port 5353" "victim outbound DNS queries to :5353"

	check_labels
}

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
				[[ -z $src ]] || printf '%s\t%s\t%s\t%s\n' "$f" "$src" "$role" "$type"
			done <<<"${LABELS[$f]}"
		done
	} >"$WORK/labels.tsv"
}

pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }

write_readme() {
	local f n size line
	{
		cat <<EOF
# Captures of real clients, servers and nmap OS detection

Recorded by \`scripts/record-captures.sh\` (as root) in the network-namespace
lab (\`scripts/lab.sh\`, namespaces \`${SW_LAB_PREFIX}*\`) on $(date -u +%Y-%m-%d): Linux $(uname -r),
nmap $(nmap --version | awk 'NR == 1 { print $3 }') (Debian $(pkgver nmap)), tcpdump $(tcpdump --version 2>&1 | awk '/^tcpdump/ { print $3 }'),
Dovecot $(dovecot --version | awk '{ print $1 }') (dovecot-imapd $(pkgver dovecot-imapd)), OpenSSH $(pkgver openssh-server),
dnsmasq $(pkgver dnsmasq-base), chrony $(pkgver chrony), dig $(pkgver bind9-dnsutils),
curl $(pkgver curl), Python $($PY -c 'import platform; print(platform.python_version())') (imaplib).
Do not edit these files by hand; re-record them with the script. Unlike
testdata/pcaps, the servers and clients here are real programs (Dovecot,
OpenSSH, dnsmasq, chrony, curl, dig, imaplib), so the TCP/UDP exchanges are
what such programs really send.

The packages, as the script installs them (\`--install-deps\`):

    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PKGS

## The lab

- A bridge in namespace \`lan\` joins the victim (198.51.100.10/24,
  fd00:77::10/64), the benign namespace and the attacker. No default
  route, no IPv6 DAD, no link-local addresses; every address is set up
  before the first capture starts.
- The benign namespace holds three client addresses: A = $A4 and $A6
  (lab.sh's own), B = $B4 and $B6, C = $C4 (IPv4 only). It also runs
  \`labsrv serve\` (HTTP :8080, DNS-like UDP :5353) on A's addresses, the
  servers the victim connects to.
- The attacker uses a fresh address 198.51.100.(100+N) / fd00:77::(100+N)
  for every scan (\`lab.sh attacker-addr N\`); its base addresses
  (198.51.100.66, fd00:77::66) send nothing.
- The victim runs \`labsrv serve\` (HTTP on :80 and :8080, IPv4 and IPv6)
  throughout. For imap-client.pcap and everyday.pcap it also runs Dovecot
  (imap on :143), OpenSSH's sshd (:22), dnsmasq (:53, authoritative for
  lab.test only) and chronyd (NTP :123, -x: it never sets the clock), each
  with a throwaway configuration in a temporary directory, listening only
  on 198.51.100.10 and fd00:77::10. None of them runs during the nmap
  captures, so there only :80 (and :8080) are open.
- nmap-os.pcap and nmap-os6.pcap: while they were recorded the victim
  dropped its own RSTs and ICMP port unreachables:

$(drop_rules_text | sed 's/^victim: /      /')

  so its closed ports :22 and :143 look filtered and nothing answers the
  probes to them; only :80 answers (SYN/ACK).
- Captures: \`tcpdump -Z root -n -s 0 -U -i veth0 -w FILE\` in the victim
  namespace (Ethernet, both directions). ARP and IPv6 neighbour discovery
  are in them. Nothing is anonymised or edited.
- During the nmap captures light benign traffic runs throughout (from 1.5s
  before the scan to 1.5s after it): client A fetches http://victim/ over
  IPv4 and IPv6 every second (\`labsrv client\`, a new connection each
  time), and the victim fetches http://A:8080/ and sends a DNS query to
  A:5353, IPv4 and IPv6, every second.

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

## What a correct detector says

labels.tsv has one line per source address of an IP packet in each file
(`file`, `src`, `role`, `type`; ARP carries no IP source and is not
listed). `attacker` sources are scanners and must raise an alert; `benign`
sources must not. `type` is what the attacker did: `ack`, `maimon`, or
`any` for nmap -O (no one scan type: the alert's type is the kind of
probe the source sent most, which depends on the ports), whose probes mix a SYN scan of the three ports with
the OS-detection probes: six SYNs with unusual options and an ECN SYN
(SYN/ECE/CWR) to the open :80, T2 NULL, T3 SYN/FIN/PSH/URG and T4 ACK to
:80; T5 SYN, T6 ACK and T7 FIN/PSH/URG to a port taken for closed (with
IPv4 and no closed port seen, as against the dropping victim, two random
high ports; nmap -6 leaves them out then), a UDP datagram to a closed or
random port (U1), and ICMP echo requests (IPv4: two; IPv6: IE1 and IE2
with extension headers, plus a node information query and a neighbour
solicitation to the victim's own address). nmap repeats the round when
no OS matches, so the same probes come several times. A detector that
calls it a SYN scan is right about the source too. The victim's own
addresses are benign: they answer and make outbound connections.

In imap-client.pcap and everyday.pcap the victim really serves :143, :22,
:53 and :123 (and :80, :8080), and every connection to them completes; a
detector whose trap ports include one of them (PortSentry's classic TCP
list has 143) must not take the clients of that service for scanners.
The one connection to a closed port (:8008, answered by RST/ACK, from
198.51.100.21) is a typing mistake, followed at once by the right port.

EOF
		for f in "${FILES[@]}"; do
			printf -- "- \`%s\`: %s.\n" "$f" "${VERDICT[$f]}"
		done
		cat <<'EOF'

## Commands

What ran for each file, in order, as recorded (the namespace first; the
client actions of imap-client.pcap and everyday.pcap were started at the
second given in `scripts/record-captures.sh`, each in the background):

EOF
		for f in "${FILES[@]}"; do
			printf -- "- \`%s\`:\n\n" "$f"
			while IFS= read -r line; do
				[[ -z $line ]] || printf '      %s\n' "$line"
			done <<<"${COMMANDS[$f]}"
			printf '\n'
		done
		cat <<'EOF'
## Checks made before the files were written

Counts of packets found with `tcpdump -nr FILE FILTER` by the recorder,
which fails when one is out of range (see `check_files` in
`scripts/record-captures.sh`).

EOF
		for f in "${FILES[@]}"; do
			printf -- "- \`%s\`: %s.\n" "$f" "${CHECKS[$f]}"
		done
	} >"$WORK/README.md"
}

install_files() {
	local f
	for f in "${FILES[@]}"; do
		tcpdump -nr "$WORK/$f" >/dev/null 2>&1 || die "tcpdump -nr $f failed"
	done
	mkdir -p "$OUT"
	for f in "${FILES[@]}" labels.tsv README.md; do
		cp "$WORK/$f" "$OUT/.$f.tmp"
		mv -f "$OUT/.$f.tmp" "$OUT/$f"
	done
	log "wrote ${#FILES[@]} captures, labels.tsv and README.md to $OUT ($(du -ch "${FILES[@]/#/$OUT/}" | tail -n1 | cut -f1) in captures)"
}

main() {
	case ${1:-} in
	"") ;;
	--install-deps) INSTALL_DEPS=1 ;;
	*) die "usage: record-captures.sh [--install-deps]" ;;
	esac
	preflight
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	WORK=$(mktemp -d /tmp/scanwarden-captures.XXXXXX)
	chmod 755 "$WORK" # dovecot's and dnsmasq's unprivileged processes read in it
	mkdir -p "$WORK/logs"
	log "building labsrv"
	go build -o "$WORK/labsrv" ./scripts/labsrv
	write_imap_client

	bash "$LAB" up
	local i
	# Every address now: adding an IPv6 address makes the kernel send MLD
	# reports (from ::), which must not land in a capture.
	ip -n "$NS_BEN" addr add "$B4/24" dev "$IFACE"
	ip -n "$NS_BEN" addr add "$B6/64" dev "$IFACE" nodad
	ip -n "$NS_BEN" addr add "$C4/24" dev "$IFACE"
	for ((i = 1; i <= FRESH_ADDRS; i++)); do
		bash "$LAB" attacker-addr "$i" >/dev/null
	done
	start_labsrv
	pause 3

	record_nmap_os
	record_ack_maimon

	start_dovecot
	start_sshd
	start_dnsmasq
	start_chronyd
	pause 1
	record_imap
	record_everyday

	log "checking the captures"
	check_files
	write_labels
	write_readme
	install_files
}

main "$@"
