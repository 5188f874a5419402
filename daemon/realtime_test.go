package daemon

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"
)

func TestRTNext(t *testing.T) {
	for _, c := range []struct {
		want, fifo, shed bool
		share            float64
		next, nextShed   bool
	}{
		{want: true, share: 0, next: true},                                // start
		{want: true, fifo: true, share: 0.3, next: true},                  // a scan's load
		{want: true, fifo: true, share: 0.6, next: false, nextShed: true}, // a flood: leave
		{want: true, shed: true, share: 0.3, next: false, nextShed: true}, // easing, not yet
		{want: true, shed: true, share: 0.1, next: true},                  // eased: back
		{want: false, fifo: true, share: 0, next: false},                  // turned off
		{want: false, shed: true, share: 0.9, next: false},                // off, not shedding
	} {
		next, shed := rtNext(c.want, c.fifo, c.shed, c.share)
		if next != c.next || shed != c.nextShed {
			t.Errorf("rtNext(want %v, fifo %v, shed %v, share %.1f) = %v, %v; want %v, %v",
				c.want, c.fifo, c.shed, c.share, next, shed, c.next, c.nextShed)
		}
	}
}

// policyOf returns the scheduling policy of the calling thread.
func policyOf(t *testing.T) uint32 {
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return a.Policy
}

// onThread runs fn on a goroutine of its own, locked to its thread,
// which ends with it (so that no test leaves a real-time thread behind).
func onThread(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		fn()
	}()
	<-done
}

// TestRTThread: with permission (root's CAP_SYS_NICE), a thread becomes
// SCHED_FIFO, a command it starts does not, it leaves real time when it
// keeps a CPU busy and comes back when idle, and follows the config.
func TestRTThread(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_NICE) for real-time priority")
	}
	log, hook := test.NewNullLogger()
	p := &rtPolicy{log: log}
	p.want.Store(true)
	onThread(func() {
		th := p.thread("the test thread")
		if got := policyOf(t); got != unix.SCHED_FIFO || !th.fifo {
			t.Fatalf("policy %d (fifo %v), want SCHED_FIFO", got, th.fifo)
		}
		// a child starts at normal priority (SCHED_RESET_ON_FORK)
		out, err := exec.Command("awk", "{ print $41 }", "/proc/self/stat").Output()
		if err != nil {
			t.Fatal(err)
		}
		if pol := strings.TrimSpace(string(out)); pol != "0" {
			t.Errorf("a command started by the thread has policy %s, want 0 (SCHED_OTHER)", pol)
		}
		// a window of busy CPU: it leaves real time, and says so
		for start := time.Now(); time.Since(start) < rtWindow+10*time.Millisecond; {
		}
		th.check()
		if got := policyOf(t); got != unix.SCHED_NORMAL || th.fifo || !th.shed {
			t.Fatalf("after a busy window: policy %d, fifo %v, shed %v", got, th.fifo, th.shed)
		}
		if !logged(hook, logrus.WarnLevel, "the test thread used") {
			t.Error("leaving real time was not logged")
		}
		// an idle window: back
		time.Sleep(rtWindow + 10*time.Millisecond)
		th.check()
		if got := policyOf(t); got != unix.SCHED_FIFO || !th.fifo || th.shed {
			t.Fatalf("after an idle window: policy %d, fifo %v, shed %v", got, th.fifo, th.shed)
		}
		// the config turned off (a reload)
		p.want.Store(false)
		time.Sleep(rtWindow + 10*time.Millisecond)
		th.check()
		if got := policyOf(t); got != unix.SCHED_NORMAL || th.fifo {
			t.Fatalf("after CAPTURE_REALTIME=0: policy %d", got)
		}
	})
	if !logged(hook, logrus.InfoLevel, "real-time priority (SCHED_FIFO 1") {
		t.Error("real-time priority was not logged")
	}
}

// TestRTThreadRefused: a thread that may not have real time (no
// CAP_SYS_NICE, RLIMIT_RTPRIO 0) stays at normal priority, the refusal is
// logged once, and no other thread asks again: the second thread keeps
// its capabilities (root's CAP_SYS_NICE would grant it), and still stays
// at normal priority.
func TestRTThreadRefused(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_RTPRIO, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != 0 {
		low := unix.Rlimit{Cur: 0, Max: lim.Max}
		if err := unix.Setrlimit(unix.RLIMIT_RTPRIO, &low); err != nil {
			t.Fatal(err)
		}
		defer unix.Setrlimit(unix.RLIMIT_RTPRIO, &lim)
	}
	log, hook := test.NewNullLogger()
	p := &rtPolicy{log: log}
	p.want.Store(true)
	for i := range 2 {
		onThread(func() {
			if i == 0 {
				dropSysNice(t) // this thread's capabilities only
			}
			th := p.thread("a thread")
			if got := policyOf(t); got != unix.SCHED_NORMAL || th.fifo {
				t.Errorf("policy %d without permission", got)
			}
		})
	}
	if !p.denied.Load() {
		t.Error("the refusal was not kept")
	}
	if n := countLogged(hook, logrus.WarnLevel, "real-time priority refused (not permitted: this process has RLIMIT_RTPRIO 0"); n != 1 {
		t.Errorf("the refusal was logged %d times, want once", n)
	}
}

// dropSysNice takes CAP_SYS_NICE out of the calling thread's effective
// set (capabilities are per thread; the thread ends with its goroutine).
func dropSysNice(t *testing.T) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	data[0].Effective &^= 1 << unix.CAP_SYS_NICE
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
}

func logged(h *test.Hook, level logrus.Level, sub string) bool { return countLogged(h, level, sub) > 0 }

// countLogged is how many entries of h at level contain sub.
func countLogged(h *test.Hook, level logrus.Level, sub string) int {
	n := 0
	for _, e := range h.AllEntries() {
		if e.Level == level && strings.Contains(e.Message, sub) {
			n++
		}
	}
	return n
}

// TestRTRefusal: the refusal names the RLIMIT_RTPRIO the process has,
// not the unit's setting.
func TestRTRefusal(t *testing.T) {
	for _, c := range []struct {
		err    error
		lim    unix.Rlimit
		limErr error
		want   string
	}{
		{unix.EPERM, unix.Rlimit{Cur: 0, Max: 0}, nil, "this process has RLIMIT_RTPRIO 0 (hard limit 0) and no CAP_SYS_NICE; it needs 1 or more: the unit's LimitRTPRIO=1 did not take effect"},
		{unix.EPERM, unix.Rlimit{Cur: 1, Max: 1}, nil, "although this process has RLIMIT_RTPRIO 1: RestrictRealtime=yes, or a seccomp filter"},
		{unix.EPERM, unix.Rlimit{}, unix.EINVAL, "RLIMIT_RTPRIO cannot be read"},
		{unix.EINVAL, unix.Rlimit{}, nil, "invalid argument"},
	} {
		if got := rtRefusal(c.err, c.lim, c.limErr); !strings.Contains(got, c.want) {
			t.Errorf("%v %+v %v: %q, want %q", c.err, c.lim, c.limErr, got, c.want)
		}
	}
}

// TestTickBeatsOnPacketTime: a capture thread tells the watchdog it is
// alive at least every rtBeatEvery of packet time, also under steady
// traffic too slow to reach rtCheckEvery probes and too fast for a read
// to time out (20 probes a second: 256 would take 12.8 s, more than
// captureStuckAfter); a flood still checks once every rtCheckEvery
// probes, not per packet.
func TestTickBeatsOnPacketTime(t *testing.T) {
	var alive atomic.Int64
	rt := &rtThread{p: &rtPolicy{log: logrus.New()}, name: "the capture", wall0: time.Now(), alive: &alive}
	ts := int64(1_700_000_000) * int64(time.Second)
	var checked []int
	for i := range 250 {
		if rt.tick(ts + int64(i)*int64(50*time.Millisecond)) {
			checked = append(checked, i)
		}
	}
	if len(checked) != 12 || checked[0] != 20 || alive.Load() == 0 {
		t.Errorf("20 probes a second for 12.5 s: checks at probes %v, want one every 20 from the 20th", checked)
	}
	for i := 1; i < len(checked); i++ {
		if checked[i]-checked[i-1] != 20 {
			t.Errorf("checks at probes %v, want one every 20", checked)
			break
		}
	}

	rt = &rtThread{p: &rtPolicy{log: logrus.New()}, name: "the capture", wall0: time.Now()}
	n := 0
	for i := range 4 * rtCheckEvery {
		if rt.tick(ts + int64(i)) { // a probe a nanosecond
			n++
		}
	}
	if n != 4 {
		t.Errorf("a flood of %d probes checked %d times, want 4", 4*rtCheckEvery, n)
	}
	// a clock set back checks at once
	if !rt.tick(ts - int64(time.Hour)) {
		t.Error("a packet time before the last check did not check")
	}
}
