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

// baseSpec is a base chain as it must be: its name, hook and priority
// (a filter chain with the policy accept).
type baseSpec struct {
	name     string
	hook     *nft.ChainHook
	priority nft.ChainPriority
}

var (
	// preroutingBase drops the banned and held sources before routing,
	// connection tracking and DNAT.
	preroutingBase = baseSpec{chainPrerouting, nft.ChainHookPrerouting, preroutingPriority}
	// inputBase jumps to the trap's catch, for packets addressed to this
	// host after DNAT.
	inputBase = baseSpec{chainInput, nft.ChainHookInput, inputPriority}
)

// chain is the base chain s of b's table.
func (b *Backend) chain(s baseSpec) *nft.Chain {
	accept := nft.ChainPolicyAccept
	return &nft.Chain{
		Name: s.name, Table: b.table, Type: nft.ChainTypeFilter,
		Hooknum: s.hook, Priority: nft.ChainPriorityRef(s.priority), Policy: &accept,
	}
}

// trapChain is the trap chain, a regular chain.
func (b *Backend) trapChain() *nft.Chain { return &nft.Chain{Name: chainTrap, Table: b.table} }

// right reports whether the kernel's chain k is the base chain s as it
// must be. (An earlier version's input chain, which dropped the banned
// sources itself, is right as a chain: only its rules differ.)
func (s baseSpec) right(k *nft.Chain) bool {
	return k != nil && k.Hooknum != nil && *k.Hooknum == *s.hook &&
		k.Priority != nil && *k.Priority == s.priority && k.Type == nft.ChainTypeFilter &&
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
// elements of rebuilt sets fit in one. It reads the table, plans the
// repair of what is missing or wrong, and writes that and nothing else.
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
	p, err := b.plan(snap, t)
	if err != nil {
		return err
	}
	if p.upToDate() {
		b.ready = true
		return nil
	}
	if err := b.write(ctx, c, p); err != nil {
		return err
	}
	b.ready = true
	return nil
}

// repair is what ensure found missing or wrong in the table (snap), and
// so writes. Whatever it does not name is right already, and is not
// touched.
type repair struct {
	snap  *snapshot
	specs []setSpec // the sets as they must be

	// Sets: created are missing, rebuilt are there but wrong (deleted
	// and created again; keep holds the elements each gets back), reset
	// are right but hold the wrong elements (emptied, then filled).
	created, rebuilt, reset map[string]bool
	keep                    map[string][]nft.SetElement
	// fill is the set contents to add, after the control messages.
	fill []op

	// Chains: as found (nil: missing), and whether each is as it must
	// be (a chain that is not is deleted and created again).
	preK, inputK, trapK         *nft.Chain
	preOK, inputOK, trapChainOK bool
	// Rules: those each chain must hold, and whether the chain is
	// emptied and given them.
	preSpecs, inputSpecs, trapSpecs       []ruleSpec
	rewritePre, rewriteInput, rewriteTrap bool
}

// plan compares snap with the table as it must be for trap t and returns
// the repair. It reads the elements of the sets whose contents matter (a
// rebuilt ban or trap set, the exemption and port sets of a known trap)
// and writes nothing.
func (b *Backend) plan(snap *snapshot, t *block.Trap) (*repair, error) {
	p := &repair{snap: snap, specs: setSpecs(trapSetSize(snap, t))}
	exempt4, exempt6, contents := trapContents(t)
	if err := b.planSets(p, exempt4, exempt6); err != nil {
		return nil, err
	}
	p.planChains()
	p.planPreroutingRules()
	p.planInputRules(p.planTrapRules(t))
	if err := b.planContents(p, contents); err != nil {
		return nil, err
	}
	return p, nil
}

// trapSetSize is the bound of the trap and spared sets: t's size when it
// gives one, else the size the kernel's trap4 has, else defaultTrapSize.
func trapSetSize(snap *snapshot, t *block.Trap) uint32 {
	if t != nil && t.Size > 0 {
		return uint32(t.Size)
	}
	if k := snap.sets[setTrap4]; k != nil && k.Size > 0 {
		return k.Size
	}
	return uint32(defaultTrapSize)
}

// trapContents returns t's exemptions as ranges of each family, and the
// contents t wants in never4, never6, tcp_traps and udp_traps. With t nil
// they are all unknown: no ranges, and no contents (the sets' elements
// are left as found).
func trapContents(t *block.Trap) (exempt4, exempt6 []addrRange, contents map[string][]nft.SetElement) {
	if t == nil {
		return nil, nil, nil
	}
	exempt4, exempt6 = exemptRanges(t.Exempt)
	contents = map[string][]nft.SetElement{
		setNever4:   intervalElems(exempt4),
		setNever6:   intervalElems(exempt6),
		setTCPTraps: portElems(t.TCP),
		setUDPTraps: portElems(t.UDP),
	}
	return exempt4, exempt6, contents
}

// planSets sorts the sets into those that are right (left alone), missing
// (created) and wrong (rebuilt), and reads what each rebuilt ban, trap or
// spared set keeps of its elements: its addresses with the time they had
// left, for a trap set without those the exemptions (exempt4, exempt6)
// cover.
func (b *Backend) planSets(p *repair, exempt4, exempt6 []addrRange) error {
	p.created, p.rebuilt = map[string]bool{}, map[string]bool{}
	p.keep = map[string][]nft.SetElement{}
	for _, s := range p.specs {
		k := p.snap.sets[s.name]
		switch {
		case k == nil:
			p.created[s.name] = true
		case !s.matches(k):
			p.rebuilt[s.name] = true
			if s.timeout() {
				es, err := b.elements(s.name)
				if err != nil {
					return err
				}
				ex := exempt4
				if s.key.Bytes == 16 {
					ex = exempt6
				}
				if s.kind != kindTrap {
					ex = nil
				}
				p.keep[s.name] = keepElems(s, es, ex)
			}
		}
	}
	return nil
}

// anyRebuilt reports whether one of the sets names is rebuilt (so that a
// rule referring to it must be written again).
func (p *repair) anyRebuilt(names ...string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return p.rebuilt[n] })
}

// planChains says whether each chain is as it must be: prerouting and
// input base chains with the right hook, priority, type and policy, trap
// a regular chain. A chain that is not (or is missing) is created again.
func (p *repair) planChains() {
	p.preK, p.inputK, p.trapK = p.snap.chains[chainPrerouting], p.snap.chains[chainInput], p.snap.chains[chainTrap]
	p.preOK = preroutingBase.right(p.preK)
	p.inputOK = inputBase.right(p.inputK)
	p.trapChainOK = p.trapK != nil && p.trapK.Hooknum == nil
}

// planPreroutingRules decides whether the prerouting chain is emptied and
// given its rules: unless it holds exactly them, is right, and none of
// the sets they refer to is rebuilt.
func (p *repair) planPreroutingRules() {
	p.preSpecs = preroutingRules()
	p.rewritePre = p.anyRebuilt(setBan4, setBan6, setTrap4, setTrap6) || !p.preOK ||
		!p.snap.rulesOK[chainPrerouting] || !slices.Equal(p.snap.rules[chainPrerouting], tags(p.preSpecs))
}

// planTrapRules decides the trap chain's rules, and returns whether input
// is to jump to the trap chain. A known trap t gets its rules (none when
// it is not Enabled), rewritten unless the chain holds exactly them, its
// sets are kept and the chain is right. With t nil, the rules and the
// jump are left as found, unless they cannot stay (the chain is wrong,
// its rules unreadable, or a set they refer to rebuilt): then the chain
// is emptied, and the trap is off until SetTrap.
func (p *repair) planTrapRules(t *block.Trap) (jump bool) {
	broken := p.anyRebuilt(setTrap4, setTrap6, setSpared4, setSpared6, setNever4, setNever6, setTCPTraps, setUDPTraps) ||
		!p.trapChainOK || !p.snap.rulesOK[chainTrap]
	if t == nil && !broken {
		return slices.Contains(p.snap.rules[chainInput], jumpRule().tag())
	}
	if t != nil && t.Enabled() {
		p.trapSpecs = trapRules(t)
	}
	p.rewriteTrap = broken || !slices.Equal(p.snap.rules[chainTrap], tags(p.trapSpecs))
	return len(p.trapSpecs) > 0
}

// planInputRules decides the input chain's rules (the jump to the trap
// chain when jump is set, nothing otherwise): they are rewritten unless
// the chain holds exactly them, is right, and no trap chain they may jump
// to is deleted. An earlier version's input chain, which also dropped the
// ban and trap sets' sources (and so refers to them), never holds exactly
// them: it is rewritten in the transaction that fills the prerouting
// chain, so that no banned source is let through meanwhile, and before a
// set it refers to is rebuilt.
func (p *repair) planInputRules(jump bool) {
	p.inputSpecs = inputRules(jump)
	p.rewriteInput = !p.inputOK || !p.snap.rulesOK[chainInput] || (p.trapK != nil && !p.trapChainOK) ||
		!slices.Equal(p.snap.rules[chainInput], tags(p.inputSpecs))
}

// planContents queues the elements to add: first the contents a known
// trap wants in its exemption and port sets, for a set that is created
// or rebuilt, or that holds other elements (it is then reset: emptied
// first); then the elements the rebuilt sets keep. A set that holds what
// it must is not touched.
func (b *Backend) planContents(p *repair, contents map[string][]nft.SetElement) error {
	p.reset = map[string]bool{}
	for _, s := range p.specs {
		want, known := contents[s.name]
		if !known {
			continue
		}
		r := ref(b.table, s)
		if p.created[s.name] || p.rebuilt[s.name] {
			p.fill = append(p.fill, chunks(false, r, want)...)
			continue
		}
		have, err := b.elements(s.name)
		if err != nil {
			return err
		}
		if !sameElems(have, want) {
			p.reset[s.name] = true
			p.fill = append(p.fill, chunks(false, r, want)...)
		}
	}
	for _, s := range p.specs {
		p.fill = append(p.fill, chunks(false, ref(b.table, s), p.keep[s.name])...)
	}
	return nil
}

// upToDate reports whether the table is as it must be already: there is
// nothing to write.
func (p *repair) upToDate() bool {
	return p.snap.exists && p.snap.counter && len(p.created) == 0 && len(p.rebuilt) == 0 && len(p.fill) == 0 &&
		len(p.reset) == 0 && !p.rewritePre && !p.rewriteInput && !p.rewriteTrap && p.preOK && p.inputOK && p.trapChainOK
}

// write sends p: the control messages in one transaction, in the order
// the kernel needs (what refers to an object is removed before it and
// added after it), with the set contents in the same transaction as far
// as they fit and in those that follow. The kernel applies a transaction
// whole or not at all: an earlier version's input chain is emptied in the
// same one that fills the prerouting chain, so no packet ever sees the
// table without the drops.
func (b *Backend) write(ctx context.Context, c *nft.Conn, p *repair) error {
	b.queueTable(c, p)
	b.queueRemovals(c, p)
	if err := b.queueSets(c, p); err != nil {
		return err
	}
	b.queueChains(c, p)
	b.queueRules(c, p)
	q := &batch{ctx: ctx, c: c}
	for _, o := range p.fill {
		if err := q.group(o); err != nil {
			return err
		}
	}
	return q.flush()
}

// queueTable queues the table (created when missing, left alone
// otherwise) and, when it is missing, the trap_overflow counter: a
// counter that is there is never reset.
func (b *Backend) queueTable(c *nft.Conn, p *repair) {
	c.AddTable(b.table)
	if !p.snap.counter {
		c.AddObj(&nft.CounterObj{Table: b.table, Name: counterOverflow})
	}
}

// queueRemovals queues the removal of what is replaced, each rule before
// the chain or set it refers to: prerouting's rules, input's (with the
// jump to trap, and an earlier version's drops) and trap's are flushed
// when rewritten or their chain is deleted, the wrong chains deleted,
// then the rebuilt sets.
func (b *Backend) queueRemovals(c *nft.Conn, p *repair) {
	if p.rewritePre && p.preK != nil {
		c.FlushChain(p.preK)
	}
	if p.rewriteInput && p.inputK != nil {
		c.FlushChain(p.inputK)
	}
	if (p.rewriteTrap || !p.trapChainOK) && p.trapK != nil {
		c.FlushChain(p.trapK)
	}
	if p.trapK != nil && !p.trapChainOK {
		c.DelChain(p.trapK)
	}
	if p.inputK != nil && !p.inputOK {
		c.DelChain(p.inputK)
	}
	if p.preK != nil && !p.preOK {
		c.DelChain(p.preK)
	}
	for _, s := range p.specs {
		if p.rebuilt[s.name] {
			c.DelSet(ref(b.table, s))
		}
	}
}

// queueSets queues the creation of the missing and rebuilt sets, then the
// emptying of the sets that are reset.
func (b *Backend) queueSets(c *nft.Conn, p *repair) error {
	for _, s := range p.specs {
		if p.created[s.name] || p.rebuilt[s.name] {
			if err := c.AddSet(s.set(b.table), nil); err != nil {
				return fmt.Errorf("encoding set %s: %w", s.name, err)
			}
		}
	}
	for _, s := range p.specs {
		if p.reset[s.name] {
			c.FlushSet(ref(b.table, s))
		}
	}
	return nil
}

// queueChains queues the creation of the chains that are missing or were
// deleted: trap first, so that it is there for input's jump.
func (b *Backend) queueChains(c *nft.Conn, p *repair) {
	if !p.trapChainOK {
		c.AddChain(b.trapChain())
	}
	if !p.inputOK {
		c.AddChain(b.chain(inputBase))
	}
	if !p.preOK {
		c.AddChain(b.chain(preroutingBase))
	}
}

// queueRules queues the rules of the chains that are rewritten (emptied
// by queueRemovals, or new), trap's first, each with its tagged comment.
func (b *Backend) queueRules(c *nft.Conn, p *repair) {
	add := func(ch *nft.Chain, rs []ruleSpec) {
		for _, r := range rs {
			c.AddRule(&nft.Rule{Table: b.table, Chain: ch, Exprs: r.exprs, UserData: r.userData()})
		}
	}
	if p.rewriteTrap {
		add(b.trapChain(), p.trapSpecs)
	}
	if p.rewriteInput {
		add(b.chain(inputBase), p.inputSpecs)
	}
	if p.rewritePre {
		add(b.chain(preroutingBase), p.preSpecs)
	}
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
