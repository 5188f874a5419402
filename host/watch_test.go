package host

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestWatchSeesNewAddresses runs Watch inside a network namespace made for
// the test (the test binary re-executed under ip netns exec) and adds an
// address there: Watch must say so, and a new read must list it.
func TestWatchSeesNewAddresses(t *testing.T) {
	if os.Getenv("SCANWARDEN_WATCH_CHILD") != "" {
		watchChild(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8)")
	}
	ns := fmt.Sprintf("swwatch%d", os.Getpid()%100000)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	for _, args := range [][]string{
		{"-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1"},
		{"-n", ns, "link", "set", "d0", "up"},
		{"-n", ns, "link", "set", "d1", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	child := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestWatchSeesNewAddresses$")
	child.Env = append(os.Environ(), "SCANWARDEN_WATCH_CHILD=1")
	stdout, _ := child.StdoutPipe()
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	buf := make([]byte, 4096)
	n, _ := stdout.Read(buf) // "watching"
	if !strings.Contains(string(buf[:n]), "watching") {
		t.Fatalf("child: %q", buf[:n])
	}
	for _, a := range []string{"198.51.100.251/32", "fd00:77::251/128"} {
		if out, err := exec.Command("ip", "-n", ns, "addr", "add", a, "dev", "d0", "nodad").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	rest, _ := readAll(stdout)
	if err := child.Wait(); err != nil || !strings.Contains(rest, "protected 198.51.100.251 fd00:77::251") {
		t.Fatalf("child: %v %q", err, rest)
	}
}

func readAll(r interface{ Read([]byte) (int, error) }) (string, error) {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String(), nil
		}
	}
}

func watchChild(t *testing.T) {
	src := NewAddrs(true, true)
	src.ResolvConf = "/nonexistent"
	var mu sync.Mutex
	read := func() map[netip.Addr]string {
		m, err := src.Read()
		if err != nil {
			t.Error(err)
		}
		return m
	}
	known := read()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Watch(ctx, func() {
		m := read()
		mu.Lock()
		known = m
		mu.Unlock()
	}, func(err error) { t.Log(err) }); err != nil {
		t.Fatal(err)
	}
	fmt.Println("watching")
	want := []netip.Addr{netip.MustParseAddr("198.51.100.251"), netip.MustParseAddr("fd00:77::251")}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		_, ok0 := known[want[0]]
		_, ok1 := known[want[1]]
		mu.Unlock()
		if ok0 && ok1 {
			fmt.Printf("protected %s %s\n", want[0], want[1])
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("new addresses never seen")
}
