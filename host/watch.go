package host

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// watchSettle is how long Watch waits after a change before it says so:
// bringing an interface up sends a burst of link, address and route
// messages, and one re-read after the burst is enough.
const watchSettle = 200 * time.Millisecond

// watchRetry is how long Watch waits before it tries again to renew a
// subscription that ended and could not be made again at once.
const watchRetry = time.Second

// watchBuffer is how many messages a subscription holds for Watch while
// changed runs. Past that the subscription's goroutine waits, the socket's
// buffer fills and the kernel drops messages: an overrun, which Watch
// counts as a change.
const watchBuffer = 64

// subscribers are the netlink subscriptions Watch makes; the tests
// replace them.
var subscribers = struct {
	link  func(chan<- netlink.LinkUpdate, <-chan struct{}, netlink.LinkSubscribeOptions) error
	addr  func(chan<- netlink.AddrUpdate, <-chan struct{}, netlink.AddrSubscribeOptions) error
	route func(chan<- netlink.RouteUpdate, <-chan struct{}, netlink.RouteSubscribeOptions) error
}{netlink.LinkSubscribeWithOptions, netlink.AddrSubscribeWithOptions, netlink.RouteSubscribeWithOptions}

// Watch calls changed whenever the kernel reports a change of links,
// addresses or routes (rtnetlink subscriptions of
// github.com/vishvananda/netlink, every routing table), once per burst of
// changes (watchSettle after its first message), from a goroutine of its
// own, until ctx ends; that goroutine, the subscriptions' goroutines and
// their sockets are gone soon after, and neither changed nor onErr is
// called once the goroutine has ended. A lost message (an overrun:
// ENOBUFS, which ends a subscription) counts as a change, and the
// subscription is made again. onErr, when not nil, hears of failed reads
// and failed renewals (retried every watchRetry). Watch returns an error
// only when a subscription cannot be made; it then leaves nothing behind.
//
// The resolv.conf files are not watched: their rewrites (resolved, DHCP
// clients) follow the address and route changes that Watch reports, and
// each report is a re-read of everything.
func Watch(ctx context.Context, changed func(), onErr func(error)) error {
	// the subscriptions' error callbacks run on their goroutines: their
	// errors go to Watch's goroutine, or are dropped when it is behind
	// (or gone: the callbacks also hear of the sockets being closed)
	errc := make(chan error, 16)
	report := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	feeds := []feed{
		&sub[netlink.LinkUpdate]{name: "link", subscribe: func(ch chan<- netlink.LinkUpdate, done <-chan struct{}) error {
			return subscribers.link(ch, done, netlink.LinkSubscribeOptions{ErrorCallback: report, ListExisting: false})
		}},
		&sub[netlink.AddrUpdate]{name: "address", subscribe: func(ch chan<- netlink.AddrUpdate, done <-chan struct{}) error {
			return subscribers.addr(ch, done, netlink.AddrSubscribeOptions{ErrorCallback: report, ListExisting: false})
		}},
		&sub[netlink.RouteUpdate]{name: "route", subscribe: func(ch chan<- netlink.RouteUpdate, done <-chan struct{}) error {
			return subscribers.route(ch, done, netlink.RouteSubscribeOptions{ErrorCallback: report, ListExisting: false})
		}},
	}
	for i, f := range feeds {
		if err := f.start(); err != nil {
			for _, g := range feeds[:i] {
				g.stop()
			}
			return err
		}
	}
	if onErr == nil {
		onErr = func(error) {}
	}
	go watchLoop(ctx, feeds, errc, changed, onErr)
	return nil
}

// watchLoop is Watch's goroutine.
func watchLoop(ctx context.Context, feeds []feed, errc <-chan error, changed func(), onErr func(error)) {
	link, addr, route := feeds[0].(*sub[netlink.LinkUpdate]), feeds[1].(*sub[netlink.AddrUpdate]), feeds[2].(*sub[netlink.RouteUpdate])
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	armed := false // a call of changed is owed when settle fires
	owe := func() {
		if !armed {
			armed = true
			settle.Reset(watchSettle)
		}
	}
	var retry <-chan time.Time
	// renew makes again the subscriptions that ended; false when one
	// could not be made (it is retried after watchRetry)
	renew := func() bool {
		var errs []error
		for _, f := range feeds {
			if !f.alive() {
				f.stop()
				if err := f.start(); err != nil {
					errs = append(errs, err)
				}
			}
		}
		retry = nil
		if len(errs) > 0 {
			onErr(errors.Join(errs...))
			retry = time.After(watchRetry)
		}
		return len(errs) == 0
	}
	defer func() {
		settle.Stop()
		for _, f := range feeds {
			f.stop()
		}
	}()
	for {
		ended := false // a subscription ended (overrun, failed read)
		select {
		case <-ctx.Done():
			return
		case _, ok := <-link.ch:
			ended = link.seen(ok)
			owe()
		case _, ok := <-addr.ch:
			ended = addr.seen(ok)
			owe()
		case _, ok := <-route.ch:
			ended = route.seen(ok)
			owe()
		case err := <-errc:
			if !overrun(err) {
				onErr(fmt.Errorf("netlink: %w", err))
			}
			owe()
		case <-retry:
			if renew() {
				owe() // what changed while a subscription was gone
			}
		case <-settle.C:
			armed = false
			changed()
		}
		if ended {
			renew()
		}
	}
}

// overrun says whether a subscription's error is the kernel's dropping
// messages for a full socket buffer. The library hands it on as text
// ("Receive failed: no buffer space available").
func overrun(err error) bool {
	return errors.Is(err, unix.ENOBUFS) || strings.HasSuffix(err.Error(), unix.ENOBUFS.Error())
}

// feed is one subscription of Watch.
type feed interface {
	start() error // subscribe
	stop()        // end the subscription; its goroutine is gone on return
	alive() bool  // subscribed, and the channel not seen closed
}

// sub is a subscription whose messages are of type T: its channel, and
// the done channel that ends it.
type sub[T any] struct {
	name      string
	subscribe func(ch chan<- T, done <-chan struct{}) error
	ch        chan T // nil when none
	done      chan struct{}
	closed    bool // ch was seen closed
}

func (s *sub[T]) start() error {
	ch, done := make(chan T, watchBuffer), make(chan struct{})
	if err := s.subscribe(ch, done); err != nil {
		close(done) // whatever the library may have started ends
		return fmt.Errorf("netlink %s subscription: %w", s.name, err)
	}
	s.ch, s.done, s.closed = ch, done, false
	return nil
}

// stop closes done, which makes the library close the socket, and drains
// the channel until the library's goroutine closes it: that goroutine
// blocks on a full channel, and it is gone when stop returns.
func (s *sub[T]) stop() {
	if s.done == nil {
		return
	}
	close(s.done)
	for range s.ch {
	}
	s.ch, s.done, s.closed = nil, nil, false
}

// seen notes a receive from the channel; it says whether the channel was
// closed: the subscription ended.
func (s *sub[T]) seen(ok bool) bool {
	s.closed = !ok
	return !ok
}

func (s *sub[T]) alive() bool { return s.ch != nil && !s.closed }
