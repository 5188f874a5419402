package nftables

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"

	nft "github.com/google/nftables"

	"github.com/scanwarden/scanwarden/block"
)

// baseChain is the input chain as it must be.
func (b *Backend) baseChain() *nft.Chain {
	accept := nft.ChainPolicyAccept
	return &nft.Chain{
		Name: chainInput, Table: b.table, Type: nft.ChainTypeFilter,
		Hooknum: nft.ChainHookInput, Priority: nft.ChainPriorityRef(inputPriority), Policy: &accept,
	}
}

// trapChain is the trap chain, a regular chain.
func (b *Backend) trapChain() *nft.Chain { return &nft.Chain{Name: chainTrap, Table: b.table} }

// baseRight reports whether the kernel's chain k is the input chain as it
// must be.
func baseRight(k *nft.Chain) bool {
	return k != nil && k.Hooknum != nil && *k.Hooknum == *nft.ChainHookInput &&
		k.Priority != nil && *k.Priority == inputPriority && k.Type == nft.ChainTypeFilter &&
		k.Policy != nil && *k.Policy == nft.ChainPolicyAccept
}

func tags(rs []ruleSpec) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.tag()
	}
	return out
}

// ensure makes the table as documented at Prepare, for trap t (nil: the
// trap's rules and set contents as found), in one transaction when the
// elements of rebuilt sets fit in one.
func (b *Backend) ensure(ctx context.Context, t *block.Trap) error {
	b.ready = false
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := b.conn()
	if err != nil {
		return err
	}
	snap, err := b.read(c)
	if err != nil {
		return err
	}

	trapSize := uint32(defaultTrapSize)
	if t != nil && t.Size > 0 {
		trapSize = uint32(t.Size)
	} else if k := snap.sets[setTrap4]; k != nil && k.Size > 0 {
		trapSize = k.Size
	}
	var exempt4, exempt6 []addrRange
	contents := map[string][]nft.SetElement{}
	if t != nil {
		exempt4, exempt6 = exemptRanges(t.Exempt)
		contents[setNever4] = intervalElems(exempt4)
		contents[setNever6] = intervalElems(exempt6)
		contents[setTCPTraps] = portElems(t.TCP)
		contents[setUDPTraps] = portElems(t.UDP)
	}

	// Sets: missing ones are created; wrong ones rebuilt, the addresses
	// they held kept with the time they had left.
	specs := setSpecs(trapSize)
	created, rebuilt := map[string]bool{}, map[string]bool{}
	keep := map[string][]nft.SetElement{}
	for _, s := range specs {
		k := snap.sets[s.name]
		switch {
		case k == nil:
			created[s.name] = true
		case !s.matches(k):
			rebuilt[s.name] = true
			if s.kind == kindBan || s.kind == kindTrap {
				es, err := b.elements(s.name)
				if err != nil {
					return err
				}
				ex := exempt4
				if s.key.Bytes == 16 {
					ex = exempt6
				}
				if s.kind == kindBan {
					ex = nil
				}
				keep[s.name] = keepElems(s, es, ex)
			}
		}
	}
	anyRebuilt := func(names ...string) bool {
		return slices.ContainsFunc(names, func(n string) bool { return rebuilt[n] })
	}

	// Chains and rules.
	inputK, trapK := snap.chains[chainInput], snap.chains[chainTrap]
	inputOK := baseRight(inputK)
	trapChainOK := trapK != nil && trapK.Hooknum == nil
	trapRefsRebuilt := anyRebuilt(setTrap4, setTrap6, setNever4, setNever6, setTCPTraps, setUDPTraps)
	var trapSpecs []ruleSpec
	trapKnown := t != nil
	if t != nil && t.Enabled() {
		trapSpecs = trapRules(t)
	}
	if t == nil && (trapRefsRebuilt || !trapChainOK || !snap.rulesOK[chainTrap]) {
		// The trap's rules cannot stay and cannot be rebuilt without
		// the trap: it is off until SetTrap.
		trapKnown = true
	}
	rewriteTrap := trapKnown && (trapRefsRebuilt || !trapChainOK || !snap.rulesOK[chainTrap] ||
		!slices.Equal(snap.rules[chainTrap], tags(trapSpecs)))
	jump := len(trapSpecs) > 0
	if !trapKnown {
		jump = slices.Contains(snap.rules[chainInput], jumpRule().tag())
	}
	inputSpecs := inputRules(jump)
	rewriteInput := anyRebuilt(setBan4, setBan6, setTrap4, setTrap6) || !inputOK || !snap.rulesOK[chainInput] ||
		(trapK != nil && !trapChainOK) || !slices.Equal(snap.rules[chainInput], tags(inputSpecs))

	// What is already as it must be is not touched.
	var fill []op // set contents, after the control messages
	reset := map[string]bool{}
	for _, s := range specs {
		want, known := contents[s.name]
		if !known {
			continue
		}
		r := ref(b.table, s)
		if created[s.name] || rebuilt[s.name] {
			fill = append(fill, chunks(false, r, want)...)
			continue
		}
		have, err := b.elements(s.name)
		if err != nil {
			return err
		}
		if !sameElems(have, want) {
			reset[s.name] = true
			fill = append(fill, chunks(false, r, want)...)
		}
	}
	for _, s := range specs {
		fill = append(fill, chunks(false, ref(b.table, s), keep[s.name])...)
	}
	if snap.exists && snap.counter && len(created) == 0 && len(rebuilt) == 0 && len(fill) == 0 &&
		!rewriteInput && !rewriteTrap && inputOK && trapChainOK {
		b.ready = true
		return nil
	}

	c.AddTable(b.table)
	if !snap.counter {
		c.AddObj(&nft.CounterObj{Table: b.table, Name: counterOverflow})
	}
	if rewriteInput && inputK != nil {
		c.FlushChain(inputK)
	}
	if (rewriteTrap || !trapChainOK) && trapK != nil {
		c.FlushChain(trapK)
	}
	if trapK != nil && !trapChainOK {
		c.DelChain(trapK)
	}
	if inputK != nil && !inputOK {
		c.DelChain(inputK)
	}
	for _, s := range specs {
		if rebuilt[s.name] {
			c.DelSet(ref(b.table, s))
		}
	}
	for _, s := range specs {
		if created[s.name] || rebuilt[s.name] {
			if err := c.AddSet(s.set(b.table), nil); err != nil {
				return fmt.Errorf("encoding set %s: %w", s.name, err)
			}
		}
	}
	for _, s := range specs {
		if reset[s.name] {
			c.FlushSet(ref(b.table, s))
		}
	}
	if !trapChainOK {
		c.AddChain(b.trapChain())
	}
	if !inputOK {
		c.AddChain(b.baseChain())
	}
	if rewriteTrap {
		for _, r := range trapSpecs {
			c.AddRule(&nft.Rule{Table: b.table, Chain: b.trapChain(), Exprs: r.exprs, UserData: r.userData()})
		}
	}
	if rewriteInput {
		for _, r := range inputSpecs {
			c.AddRule(&nft.Rule{Table: b.table, Chain: b.baseChain(), Exprs: r.exprs, UserData: r.userData()})
		}
	}
	q := &batch{ctx: ctx, c: c}
	for _, o := range fill {
		if err := q.group(o); err != nil {
			return err
		}
	}
	if err := q.flush(); err != nil {
		return err
	}
	b.ready = true
	return nil
}

// chunks splits elems into ops of at most elemsPerMsg elements.
func chunks(del bool, s *nft.Set, elems []nft.SetElement) []op {
	var out []op
	for len(elems) > 0 {
		n := min(len(elems), elemsPerMsg)
		out = append(out, op{del: del, s: s, elems: elems[:n]})
		elems = elems[n:]
	}
	return out
}

// keepElems returns what a rebuilt address set s keeps of its elements es:
// the addresses of s's family, not covered by exempt, each with the time
// it had left (or none), and at most s.size of them: those that would
// expire last (no timeout first).
func keepElems(s setSpec, es []nft.SetElement, exempt []addrRange) []nft.SetElement {
	type kept struct {
		a netip.Addr
		k kernelElem
	}
	var ks []kept
	for a, k := range elemsByAddr(es) {
		if len(keyOf(a)) != int(s.key.Bytes) || covered(exempt, a) {
			continue
		}
		ks = append(ks, kept{a, k})
	}
	slices.SortFunc(ks, func(x, y kept) int {
		if x.k.timeout != y.k.timeout {
			if !x.k.timeout {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(y.k.left, x.k.left); c != 0 {
			return c
		}
		return x.a.Compare(y.a)
	})
	if s.size > 0 && len(ks) > int(s.size) {
		ks = ks[:s.size]
	}
	out := make([]nft.SetElement, len(ks))
	for i, x := range ks {
		out[i] = nft.SetElement{Key: keyOf(x.a)}
		if x.k.timeout {
			out[i].Timeout = roundUpMs(max(x.k.left, minTimeout))
		}
	}
	return out
}
