package daemon

import (
	"net"
	"os"
	"strconv"
	"time"
)

// sdNotify sends a state ("READY=1", "WATCHDOG=1", "STOPPING=1",
// "STATUS=...") to systemd when it runs us as Type=notify; it does nothing
// otherwise. An abstract socket is written with a leading '@'.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// watchdogInterval returns how often systemd wants a WATCHDOG=1 (half its
// WatchdogSec, as sd_watchdog_enabled(3) advises), or 0 when no watchdog
// is set for this process.
func watchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}
