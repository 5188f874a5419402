package daemon

// Real-time priority for the threads between a probe and its block
// (CAPTURE_REALTIME).
//
// Why: what a scanner learns is the number of probes answered before the
// block, and nmap sends up to 100 a millisecond. Measured in the lab
// (scripts/bench-nmap.sh, 2 CPUs shared with nmap): at normal priority the
// capture thread, woken by a probe, waited up to 4 ms (a scheduler tick)
// for a CPU, and nmap classified a median of 98 ports [17-273] in 7 runs
// with the nftables backend; at SCHED_FIFO 1 the wait was gone and it
// classified 13 [4-24]. Real time is for that latency, not for throughput: a
// thread that uses much of a CPU (a flood it cannot keep up with) goes
// back to normal priority until the load eases, so that it never takes a
// CPU from the rest of the system (the kernel's own limit, 95 % of each
// CPU for real-time tasks, is only the last resort).

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

const (
	// rtPriority is the lowest SCHED_FIFO priority: above every normal
	// task, below every other real-time one (the kernel's own threads,
	// watchdogs, audio).
	rtPriority = 1
	// rtWindow is the wall time over which a thread's CPU share is
	// measured: long enough to average out a scan's bursts, short enough
	// that a flood takes the CPU for at most this long.
	rtWindow = 250 * time.Millisecond
	// rtCheckEvery is how many probes a capture thread reads between two
	// looks at the clock (a power of two): the check stays off the
	// per-packet path.
	rtCheckEvery = 256
	// rtBeatEvery is the packet time after which a probe makes the
	// thread check (and tell the watchdog it is alive) even before
	// rtCheckEvery probes: steady traffic of 10 to 25 probes a second
	// never lets a read time out, and 256 probes would take longer than
	// captureStuckAfter. One look at the clock a second costs nothing.
	rtBeatEvery = time.Second
	// rtLeaveShare is the share of a CPU above which a thread leaves real
	// time. A capture thread reading an nmap scan at full speed (100k
	// probes/s) uses about a fifth of one.
	rtLeaveShare = 0.5
	// rtReturnShare is the share below which it comes back (lower, so that
	// a load near the limit does not flip it every window).
	rtReturnShare = 0.2
)

// rtPolicy is the daemon's part: whether the config asks for real time
// (updated on reload) and whether the kernel refused it (then no thread
// asks again).
type rtPolicy struct {
	log    logrus.FieldLogger
	want   atomic.Bool
	denied atomic.Bool
	// said: the outcome (on, or refused) was logged.
	said sync.Once
}

// rtThread is one goroutine's thread and its scheduling state. Used by
// that goroutine only.
type rtThread struct {
	p    *rtPolicy
	name string
	fifo bool // the thread is SCHED_FIFO now
	shed bool // it left real time for its load
	n    uint
	// lastTS is the packet time of the latest check by tick (0: none yet)
	lastTS int64
	// start of the window: wall time and the thread's CPU time
	wall0 time.Time
	cpu0  time.Duration
	// alive, when not nil, is told the time of every check (UnixNano):
	// the watchdog's view of a capture thread (see daemon.stuck).
	alive *atomic.Int64
}

// beat tells alive, if any, that the thread was alive at now.
func (t *rtThread) beat(now time.Time) {
	if t.alive != nil {
		t.alive.Store(now.UnixNano())
	}
}

// allowed: the config asks for real time and it was not refused.
func (p *rtPolicy) allowed() bool { return p.want.Load() && !p.denied.Load() }

// thread locks the calling goroutine to its thread for good (a locked
// goroutine's thread ends with it, so a real-time thread never runs
// another goroutine) and makes it real-time if the config asks for it.
func (p *rtPolicy) thread(name string) *rtThread {
	runtime.LockOSThread()
	t := &rtThread{p: p, name: name, wall0: time.Now(), cpu0: threadCPU()}
	t.set(p.allowed())
	return t
}

// tick counts a probe of packet time ts and checks the thread's share
// every rtCheckEvery probes, or at the first probe rtBeatEvery of packet
// time or more from the last check (after it, or before it: a clock set
// back; packets a little out of order do not count); it
// reports whether it checked (the capture thread publishes its engine's
// counters then too).
func (t *rtThread) tick(ts int64) bool {
	t.n++
	if t.lastTS == 0 {
		t.lastTS = ts
	}
	if d := ts - t.lastTS; t.n&(rtCheckEvery-1) != 0 && d > -int64(rtBeatEvery) && d < int64(rtBeatEvery) {
		return false
	}
	t.lastTS = ts
	t.check()
	return true
}

// check tells the watchdog the thread is alive, and ends the window once
// rtWindow has passed: the thread leaves or regains real time by its CPU
// share (rtNext), and follows the config.
func (t *rtThread) check() {
	now := time.Now()
	t.beat(now)
	el := now.Sub(t.wall0)
	if el < rtWindow {
		return
	}
	cpu := threadCPU()
	share := float64(cpu-t.cpu0) / float64(el)
	t.wall0, t.cpu0 = now, cpu
	fifo, shed := rtNext(t.p.allowed(), t.fifo, t.shed, share)
	switch {
	case shed && !t.shed:
		t.p.log.Warnf("adminalert: %s used %.0f%% of a CPU: at normal priority until its load eases (CAPTURE_REALTIME)", t.name, share*100)
	case t.shed && !shed && fifo:
		t.p.log.Infof("%s is back at real-time priority", t.name)
	}
	t.shed = shed
	t.set(fifo)
}

// rtNext says whether a thread is to be real-time after a window in which
// it used share of a CPU, and whether it is shedding load: never when
// not wanted; not above rtLeaveShare; once shedding, not until its share
// is below rtReturnShare.
func rtNext(want, fifo, shed bool, share float64) (nextFIFO, nextShed bool) {
	switch {
	case !want:
		return false, false
	case fifo && share > rtLeaveShare:
		return false, true
	case shed && share >= rtReturnShare:
		return false, true
	}
	return true, false
}

// set makes the thread SCHED_FIFO rtPriority or SCHED_OTHER. Children
// (the commands the daemon runs) start at normal priority either way
// (SCHED_RESET_ON_FORK). A refusal (no RLIMIT_RTPRIO, no CAP_SYS_NICE, or
// systemd's RestrictRealtime=) makes no thread ask again; the first
// outcome, real time or its refusal, is logged, once for the process.
func (t *rtThread) set(fifo bool) {
	if fifo == t.fifo {
		return
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL, Flags: unix.SCHED_FLAG_RESET_ON_FORK}
	if fifo {
		attr.Policy, attr.Priority = unix.SCHED_FIFO, rtPriority
	}
	err := unix.SchedSetAttr(0, &attr, 0)
	switch {
	case err == nil:
		t.fifo = fifo
		if fifo {
			t.p.said.Do(func() {
				t.p.log.Infof("capture and blocking threads at real-time priority (SCHED_FIFO %d; CAPTURE_REALTIME)", rtPriority)
			})
		}
	case fifo:
		t.p.denied.Store(true)
		t.p.said.Do(func() {
			var lim unix.Rlimit
			limErr := unix.Getrlimit(unix.RLIMIT_RTPRIO, &lim)
			why := rtRefusal(err, lim, limErr)
			t.p.log.Warnf("capture at normal priority: real-time priority refused (%s); a busy machine may delay blocks by milliseconds. CAPTURE_REALTIME=\"0\" silences this", why)
		})
	default:
		t.p.log.Errorf("%s: cannot return to normal priority: %v", t.name, err)
	}
}

// rtRefusal says why SCHED_FIFO was refused (err), from the RLIMIT_RTPRIO
// the process actually has (lim, or limErr when it could not be read):
// the limit, not the unit's setting, is what the kernel went by.
func rtRefusal(err error, lim unix.Rlimit, limErr error) string {
	if !errors.Is(err, unix.EPERM) {
		return err.Error()
	}
	switch {
	case limErr != nil:
		return fmt.Sprintf("not permitted, and RLIMIT_RTPRIO cannot be read (%v): it needs RLIMIT_RTPRIO >= %d or CAP_SYS_NICE", limErr, rtPriority)
	case lim.Cur < rtPriority:
		return fmt.Sprintf("not permitted: this process has RLIMIT_RTPRIO %d (hard limit %d) and no CAP_SYS_NICE; it needs %d or more: the unit's LimitRTPRIO=%d did not take effect (a host or container that caps the limit), or a drop-in changed it",
			lim.Cur, lim.Max, rtPriority, rtPriority)
	}
	return fmt.Sprintf("not permitted although this process has RLIMIT_RTPRIO %d: RestrictRealtime=yes, or a seccomp filter, refuses it", lim.Cur)
}

// threadCPU is the calling thread's CPU time.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
