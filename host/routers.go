package host

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// routersMax bounds the distinct next hops Routers returns: a router's
// full table may hold a million routes, through a handful of next hops.
const routersMax = 4096

// Routers returns the next hops of every route of every routing table,
// both families (gateways, RTA_VIA addresses, multipath next hops): the
// neighbours that forward traffic for the host, and so whose frames may
// carry others' addresses. Past routersMax distinct ones the rest are
// left out, with an error. A dump the kernel interrupted is tried again,
// dumpTries times in all.
func Routers() (map[netip.Addr]struct{}, error) {
	out := map[netip.Addr]struct{}{}
	var errs []error
	filter := &netlink.Route{Table: unix.RT_TABLE_UNSPEC}
	full := false
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		for try := 1; ; try++ {
			err := netlink.RouteListFilteredIter(family, filter, netlink.RT_FILTER_TABLE, func(r netlink.Route) bool {
				nextHops(&r, func(a netip.Addr) {
					if len(out) < routersMax {
						out[a] = struct{}{}
					} else if _, ok := out[a]; !ok {
						full = true
					}
				})
				return true
			})
			if errors.Is(err, netlink.ErrDumpInterrupted) && try < dumpTries {
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("route dump (family %d): %w", family, err))
			}
			break
		}
	}
	if full {
		errs = append(errs, fmt.Errorf("more than %d next hops: the others are not known as routers", routersMax))
	}
	return out, errors.Join(errs...)
}
