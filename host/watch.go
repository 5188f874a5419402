package host

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// watchSettle is how long Watch waits after a change before it says so:
// bringing an interface up sends a burst of link, address and route
// messages, and one re-read after the burst is enough.
const watchSettle = 200 * time.Millisecond

// Watch calls changed whenever the kernel reports a change of links,
// addresses or routes (rtnetlink multicast groups), once per burst of
// changes, from a goroutine of its own, until ctx ends; the goroutine and
// its socket are gone soon after (within a read timeout of 250 ms). A
// lost message (ENOBUFS) counts as a change. onErr, when not nil, hears of
// failed reads. Watch returns an error only when the netlink socket
// cannot be opened.
func Watch(ctx context.Context, changed func(), onErr func(error)) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR |
		unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("netlink bind: %w", err)
	}
	// a read timeout lets the loop notice ctx
	tv := unix.NsecToTimeval(int64(250 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return fmt.Errorf("netlink timeout: %w", err)
	}
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 64<<10)
		var due time.Time // when a re-read is owed
		for ctx.Err() == nil {
			_, _, err := unix.Recvfrom(fd, buf, 0)
			switch {
			case err == nil, err == unix.ENOBUFS:
				if due.IsZero() {
					due = time.Now().Add(watchSettle)
				}
			case err == unix.EAGAIN, err == unix.EINTR:
			default:
				if onErr != nil {
					onErr(fmt.Errorf("netlink: %w", err))
				}
				time.Sleep(time.Second)
			}
			if !due.IsZero() && !time.Now().Before(due) {
				due = time.Time{}
				changed()
			}
		}
	}()
	return nil
}
