package block

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// watchSettle is how long Watch waits after a change before re-reading:
// bringing an interface up sends a burst of link, address and route
// messages, and one re-read after the burst is enough.
const watchSettle = 200 * time.Millisecond

// Watch re-reads the host's addresses, gateways and resolvers whenever the
// kernel reports a change of links, addresses or routes (rtnetlink
// multicast groups), until ctx ends. onErr, when not nil, hears of failed
// re-reads. It returns an error only when the netlink socket cannot be
// opened; a lost message (ENOBUFS) triggers a re-read too.
func (n *NeverBlock) Watch(ctx context.Context, onErr func(error)) error {
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
				if err := n.Refresh(); err != nil && onErr != nil {
					onErr(err)
				}
			}
		}
	}()
	return nil
}
