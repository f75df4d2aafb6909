package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// Settlement (DESIGN §8) has two sides.
//
// The leader's (leaderRun.settler, part of the leader run, so it stops the
// moment leadership is lost) proposes {from = settled+1, to = applied
// height (a batch end, snapped down to one when the range is capped), net
// change set, D(to), state hash at to} when the channel's
// policy says so, or when the unsettled suffix reaches SettleMaxHeights or
// SettleMaxUnsettledBytes whatever the policy, keeps one proposal of its
// own open at a time, and executes it once it passed. Past
// suffixHardFactor times those bounds (settlements keep failing) it
// answers new calls ErrBusy until a settlement executes.
//
// Every member's (Channel.runSettlement, for the channel's lifetime)
// watches the chain for settlement proposals of its channel, waits until it
// applied their last height, recomputes the range from its own journal and
// votes for (equal change set, digest and state hash) or against
// (different, or to inside a batch); it abstains when it cannot judge (the range is pruned here,
// the state hash at to is unknown here, or it did not reach the last
// height within SettleTimeout). The journal keeps the state hash of every
// height (fsm.Machine.StateHash), so a member that applied past to still
// judges it. It prunes its journal to the chain's settled
// height once it applied that height: pruning follows the chain, never
// runs ahead of it, and fsm.PruneTo refuses anything above the applied
// height.

// suffixHardFactor is how many times SettleMaxHeights or
// SettleMaxUnsettledBytes the unsettled suffix may reach before the
// leader stops ordering new calls: the soft bound forces a settlement, the
// hard one keeps a channel whose settlements keep failing from growing
// what every member keeps in memory (the journal) and what a snapshot of
// the settled state must carry (the batches since).
const suffixHardFactor = 4

// recentProposals is how many of a channel's latest proposals a member
// looks at when it starts, for settlements proposed while it was away.
const recentProposals = 8

// settlePolicy returns the channel's settlement policy: the chain's when it
// names one, else the node's defaults.
func (c *Channel) settlePolicy() (everyHeights uint64, interval time.Duration) {
	if rec := c.view.channel(); rec != nil && (rec.Config.SettleEveryTxs > 0 || rec.Config.SettleInterval > 0) {
		return rec.Config.SettleEveryTxs, rec.Config.SettleInterval
	}
	return c.cfg.SettleEveryHeights, c.cfg.SettleInterval
}

// chainSettled returns the settled height as the chain view last read it.
func (c *Channel) chainSettled() uint64 {
	if rec := c.view.channel(); rec != nil {
		return rec.SettledHeight
	}
	return 0
}

// openSettlement is the leader's own settlement proposal that has not
// executed yet.
type openSettlement struct {
	id      uint64
	s       protocol.Settlement
	created time.Time
}

// settler is the leader side of settlement; it runs for one leader run.
func (run *leaderRun) settler() {
	defer run.wg.Done()
	c := run.c
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() { // ends with the settler: stopped is closed on its way out
		select {
		case <-run.stop:
			cancel()
		case <-stopped:
		}
	}()
	// The tick checks the policy against the applied height and the time;
	// the chain is read when the view takes in news of the channel (a
	// vote, an execution), or every chainResync.
	t := time.NewTicker(c.cfg.ChainPollInterval)
	defer t.Stop()
	open := run.adoptSettlement(ctx)
	var executedTo uint64 // the chain view may not show our execution yet
	lastSettled, lastFollow := time.Now(), time.Now()
	leaves := newLeaveWork()
	// The view's signal is taken again as soon as it fires, before the
	// chain is read: a read the view takes in while this loop works (the
	// vote that passes the proposal) fires the next one at once. Taken at
	// each select instead, such a read was missed until the next news of
	// the channel or chainResync, seconds after the proposal passed.
	refreshed := c.view.refreshed()
	for {
		news := false
		select {
		case <-run.stop:
			return
		case <-refreshed:
			news = true
			refreshed = c.view.refreshed()
		case <-t.C:
		}
		run.checkSuffix(max(c.chainSettled(), executedTo))
		if open != nil {
			if !news && time.Since(lastFollow) < c.chainResync() {
				continue
			}
			lastFollow = time.Now()
			done, settled := run.followSettlement(ctx, open)
			if settled {
				executedTo = max(executedTo, open.s.To)
				lastSettled = time.Now()
				c.metrics.settlements.WithLabelValues("executed").Inc()
			}
			if done {
				if !settled {
					c.metrics.settlements.WithLabelValues("abandoned").Inc()
				}
				open = nil
			}
			continue
		}
		settledH := max(c.chainSettled(), executedTo)
		// Leaves and closing settle now, whatever the policy (leave.go).
		urgent := run.leaveWork(ctx, leaves, settledH)
		s, ok := run.settlementDue(settledH, lastSettled, urgent)
		if !ok {
			continue
		}
		cctx, ccancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
		pid, err := c.cfg.Chain.CreateProposal(cctx, c.id, protocol.ProposalSettlement, protocol.Marshal(&s))
		ccancel()
		if err != nil {
			if ctx.Err() == nil {
				c.logger.Warn("settlement proposal refused", "from", s.From, "to", s.To, "error", err)
				_ = c.refreshChain()
			}
			continue
		}
		c.metrics.settlements.WithLabelValues("proposed").Inc()
		c.logger.Info("settlement proposed", "proposal", pid, "from", s.From, "to", s.To, "changes", s.ChangeSet.Len())
		open = &openSettlement{id: pid, s: s, created: time.Now()}
		lastFollow = time.Now()
	}
}

// adoptSettlement returns the newest open settlement proposal that starts
// right after the settled height, if any: one a previous leader made and
// could not execute. The new leader follows it instead of proposing the
// same range again.
func (run *leaderRun) adoptSettlement(ctx context.Context) *openSettlement {
	c := run.c
	rec := c.view.channel()
	if rec == nil {
		return nil
	}
	for pid := rec.LastProposal; pid > 0 && pid+recentProposals > rec.LastProposal; pid-- {
		cctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
		p, err := c.cfg.Chain.Proposal(cctx, c.id, pid)
		cancel()
		if err != nil {
			return nil
		}
		var s protocol.Settlement
		if p.Kind != protocol.ProposalSettlement || p.Status != contract.ProposalOpen ||
			protocol.Unmarshal(p.Data, &s) != nil || s.From != rec.SettledHeight+1 {
			continue
		}
		c.logger.Info("following an open settlement proposal", "proposal", pid, "proposer", p.Proposer, "from", s.From, "to", s.To)
		return &openSettlement{id: pid, s: s, created: time.Now()}
	}
	return nil
}

// settlementDue builds the settlement the policy asks for now, or that
// urgent asks for (a height above settled: a leave or a close), if any:
// from settled+1 to the applied height, capped so that the proposal fits.
func (run *leaderRun) settlementDue(settled uint64, last time.Time, urgent uint64) (protocol.Settlement, bool) {
	c := run.c
	every, interval := c.settlePolicy()
	var s protocol.Settlement
	var err error
	ok := false
	c.fsm.machine(func(m *fsm.Machine) {
		if m == nil || m.Height() <= settled || m.SettledHeight() > settled {
			return
		}
		unsettled := m.Height() - settled
		// The suffix bound settles whatever the policy says.
		forced := unsettled >= c.cfg.SettleMaxHeights || m.UnsettledBytes() >= c.cfg.SettleMaxUnsettledBytes
		if urgent <= settled && !forced && !(every > 0 && unsettled >= every) && !(interval > 0 && time.Since(last) >= interval) {
			return
		}
		s, err = buildSettlement(m, settled+1, m.Height(), c.cfg.SettleMaxHeights, c.cfg.SettleMaxBytes)
		ok = err == nil
	})
	if err != nil {
		c.logger.Error("cannot build a settlement", "from", settled+1, "error", err)
	}
	return s, ok
}

// checkSuffix updates the leader's answer to new calls: busy while the
// heights since settled, or what their batches weigh, are past
// suffixHardFactor times the suffix bound.
func (run *leaderRun) checkSuffix(settled uint64) {
	c := run.c
	full := false
	var heights, size uint64
	c.fsm.machine(func(m *fsm.Machine) {
		if m == nil || m.Height() <= settled {
			return
		}
		heights, size = m.Height()-settled, m.UnsettledBytes()
		full = heights > suffixHardFactor*c.cfg.SettleMaxHeights || size > suffixHardFactor*c.cfg.SettleMaxUnsettledBytes
	})
	if was := run.suffixFull.Swap(full); was != full {
		if full {
			c.logger.Warn("unsettled suffix past its hard bound, refusing new calls until a settlement executes",
				"settled", settled, "heights", heights, "bytes", size)
		} else {
			c.logger.Info("unsettled suffix back within bounds, ordering calls again", "settled", settled)
		}
	}
}

// buildSettlement returns the settlement of from..to', where to' is the
// highest batch end (fsm.Machine.LastBatchEnd) of from..to such that the
// range fits: at most maxHeights heights, at most protocol.MaxChanges
// changes and maxBytes encoded. A settlement ends at a batch end so that
// the batches since the settled height, which a snapshot carries, are
// whole signed batches; when the first batch alone is longer than
// maxHeights, the range is that batch. It carries the state hash at to',
// which every height of the journal has unless it was restored from a
// snapshot too old to carry them.
func buildSettlement(m *fsm.Machine, from, to, maxHeights uint64, maxBytes int) (protocol.Settlement, error) {
	to = min(to, from+maxHeights-1)
	for {
		end, ok := m.LastBatchEnd(from, to)
		if !ok {
			// The batch of height from ends after to.
			if end, ok = m.NextBatchEnd(from); !ok {
				return protocol.Settlement{}, fmt.Errorf("no batch ends at or after height %d", from)
			}
		}
		to = end
		cs, err := m.NetChangeSet(from, to)
		if err != nil {
			return protocol.Settlement{}, err
		}
		d, _ := m.Digest(to)
		sh, ok := m.StateHash(to)
		if !ok {
			return protocol.Settlement{}, fmt.Errorf("no state hash at height %d (restored from an old snapshot)", to)
		}
		s := protocol.Settlement{From: from, To: to, ChangeSet: cs, Digest: d, StateHash: sh}
		if cs.Len() <= protocol.MaxChanges && len(protocol.Marshal(&s)) <= maxBytes {
			return s, nil
		}
		if first, _ := m.NextBatchEnd(from); to == first {
			return protocol.Settlement{}, fmt.Errorf("the batch of heights %d..%d alone changes %d resources, more than a proposal carries", from, to, cs.Len())
		}
		to = from + (to-from)/2
	}
}

// followSettlement checks the leader's open proposal and executes it once
// passed. done says the proposal needs no more following; settled that it
// executed.
func (run *leaderRun) followSettlement(ctx context.Context, open *openSettlement) (done, settled bool) {
	c := run.c
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	p, err := c.cfg.Chain.Proposal(cctx, c.id, open.id)
	if err != nil {
		return false, false
	}
	if p.Status != contract.ProposalOpen {
		return true, p.Status == contract.ProposalExecuted
	}
	// Settlement needs 2/3 of the electorate in favour. Only the votes on
	// record are final: a silent delegator counted against with its
	// candidate may still vote in favour itself (delegation_votes.go).
	if notFor := finalNotFor(p); 3*uint64(p.Electorate-min(notFor, p.Electorate)) < 2*uint64(p.Electorate) {
		c.logger.Warn("settlement proposal cannot pass", "proposal", open.id, "for", p.For, "against", p.Against, "abstain", p.Abstain)
		return true, false
	}
	if !p.Passed(0) {
		if time.Since(open.created) > c.cfg.SettleTimeout {
			c.logger.Warn("settlement proposal not passed in time, proposing afresh", "proposal", open.id, "for", p.For, "of", p.Electorate)
			return true, false
		}
		return false, false
	}
	err = c.cfg.Chain.ExecuteProposal(cctx, c.id, open.id)
	switch {
	case err == nil:
		c.logger.Info("channel settled", "proposal", open.id, "height", open.s.To, "for", p.For, "of", p.Electorate)
		_ = c.refreshChain()
		return true, true
	case errors.Is(err, contract.ErrProposalClosed):
		// Executed by someone else, or closed: read it next round.
		return false, false
	case errors.Is(err, contract.ErrBadRange), errors.Is(err, contract.ErrStateMismatch):
		c.logger.Warn("settlement proposal stale", "proposal", open.id, "error", err)
		_ = c.refreshChain()
		return true, false
	default:
		if ctx.Err() == nil {
			c.logger.Warn("cannot execute settlement", "proposal", open.id, "error", err)
		}
		return false, false
	}
}

// finalNotFor counts the votes on p's record that are not in favour:
// each is final, unlike the weight a candidate's vote lends its silent
// delegators.
func finalNotFor(p *settlement.ProposalInfo) uint32 {
	var n uint32
	for _, r := range p.Votes {
		if r.Option != protocol.VoteFor {
			n++
		}
	}
	return n
}

// judging is a settlement proposal a member has yet to vote on.
type judging struct {
	id   uint64
	s    protocol.Settlement
	seen time.Time
}

// runSettlement is the member side of settlement: it votes on the channel's
// settlement proposals and prunes the journal to the settled height. It
// learns of proposals from the view (the record's last proposal id, which
// the chain feed keeps current); the tick waits for this member to apply
// a proposal's range.
func (c *Channel) runSettlement(ctx context.Context) {
	t := time.NewTicker(c.cfg.ChainPollInterval)
	defer t.Stop()
	pending := map[uint64]*judging{}
	var order []uint64 // proposal ids, oldest first
	add := func(pid uint64) {
		if _, ok := pending[pid]; ok {
			return
		}
		j, ok := c.readSettlementProposal(pid)
		if ok {
			pending[pid] = j
			order = append(order, pid)
		}
	}
	var scan proposalScan
	// While a proposal waits for this member to apply its range, the loop
	// also wakes on each batch applied, so that it votes within a batch of
	// reaching the range rather than at the next tick: the proposal's
	// votes should make the chain's next block.
	var applied <-chan Applied
	unsubscribe := func() {}
	defer func() { unsubscribe() }()
	refreshed := c.view.refreshed() // taken again as it fires, as in settler
	for {
		select {
		case <-ctx.Done():
			return
		case <-refreshed:
			refreshed = c.view.refreshed()
		case <-t.C:
		case _, open := <-applied:
			if !open {
				applied, unsubscribe = nil, func() {}
			}
		}
		for _, pid := range scan.next(c) {
			add(pid)
		}
		kept := order[:0]
		waiting := false
		for _, pid := range order {
			j := pending[pid]
			opt, ok := c.judge(j)
			if ok {
				opt = c.misvote(opt)
			}
			if ok && c.castVote(j.id, opt) {
				c.metrics.votes.WithLabelValues(opt.String()).Inc()
				delete(pending, pid)
				continue
			}
			waiting = waiting || !ok
			kept = append(kept, pid)
		}
		order = kept
		switch {
		case waiting && applied == nil:
			applied, unsubscribe = c.Subscribe(16)
		case !waiting && applied != nil:
			unsubscribe()
			applied, unsubscribe = nil, func() {}
		}
		c.pruneSettled()
	}
}

// readProposal reads proposal pid of the channel, trying again for up to
// PeerTimeout while the chain does not answer.
func (c *Channel) readProposal(ctx context.Context, pid uint64) (*settlement.ProposalInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
	defer cancel()
	return retryChain(ctx, func(ctx context.Context) (*settlement.ProposalInfo, error) {
		return c.cfg.Chain.Proposal(ctx, c.id, pid)
	})
}

// readSettlementProposal reads an open settlement proposal of the channel
// this member has not voted on.
func (c *Channel) readSettlementProposal(pid uint64) (*judging, bool) {
	p, err := c.readProposal(c.ctx, pid)
	if err != nil {
		return nil, false
	}
	for _, v := range p.Votes {
		if v.Voter == c.me() {
			return nil, false
		}
	}
	j, err := settlementOf(p)
	return j, err == nil
}

// settlementOf returns an open settlement proposal to judge.
func settlementOf(p *settlement.ProposalInfo) (*judging, error) {
	if p.Kind != protocol.ProposalSettlement {
		return nil, fmt.Errorf("%w: proposal %d is a %s proposal", ErrNotSettlement, p.ID, p.Kind)
	}
	if p.Status != contract.ProposalOpen {
		return nil, fmt.Errorf("%w: proposal %d is %s", contract.ErrProposalClosed, p.ID, p.Status)
	}
	var s protocol.Settlement
	if err := protocol.Unmarshal(p.Data, &s); err != nil {
		return nil, fmt.Errorf("%w: proposal %d: %v", ErrNotSettlement, p.ID, err)
	}
	return &judging{id: p.ID, s: s, seen: time.Now()}, nil
}

// JudgeSettlement returns the vote this member's journal gives an open
// settlement proposal of the channel: for when the range's net change set,
// digest and state hash equal its own, against when they differ or the
// range ends inside a batch, abstain
// when the range is pruned here or its state hash unknown here. It waits until this member applied the range's last
// height, or ctx ends. Members that run no node (clients) can ask the node
// they trust and sign their own vote with it.
func (c *Channel) JudgeSettlement(ctx context.Context, proposal uint64) (protocol.VoteOption, error) {
	p, err := retryChain(ctx, func(ctx context.Context) (*settlement.ProposalInfo, error) {
		return c.cfg.Chain.Proposal(ctx, c.id, proposal)
	})
	if err != nil {
		return 0, err
	}
	j, err := settlementOf(p)
	if err != nil {
		return 0, err
	}
	for {
		if opt, ok := c.judge(j); ok {
			return opt, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-c.ctx.Done():
			return 0, ErrClosed
		case <-time.After(c.cfg.ChainPollInterval):
		}
	}
}

// judge compares a settlement with this member's own journal. ok is false
// while the member has not applied the proposal's last height yet.
func (c *Channel) judge(j *judging) (opt protocol.VoteOption, ok bool) {
	s := &j.s
	c.fsm.machine(func(m *fsm.Machine) {
		switch {
		case m == nil || m.Height() < s.To:
			if time.Since(j.seen) > c.cfg.SettleTimeout {
				c.logger.Warn("settlement range not applied in time, abstaining", "proposal", j.id, "to", s.To)
				opt, ok = protocol.VoteAbstain, true
			}
			return
		case s.From <= m.SettledHeight():
			// Pruned here: this member cannot judge the range.
			opt, ok = protocol.VoteAbstain, true
			return
		}
		ok = true
		sh, known := m.StateHash(s.To)
		if !known {
			// Restored from a snapshot that did not carry it.
			opt = protocol.VoteAbstain
			return
		}
		opt = protocol.VoteAgainst
		if m.InsideBatch(s.To) {
			// A settlement ends at a batch end, or the batches since it
			// would not be whole signed batches (buildSettlement).
			return
		}
		cs, err := m.NetChangeSet(s.From, s.To)
		if err != nil {
			return
		}
		d, _ := m.Digest(s.To)
		// A proposal without a state hash (zero) differs from every
		// member's: the chain must commit to the whole state.
		if d == s.Digest && sh == s.StateHash && bytes.Equal(protocol.Marshal(cs), protocol.Marshal(s.ChangeSet)) {
			opt = protocol.VoteFor
		}
	})
	if ok && opt == protocol.VoteAgainst {
		c.logger.Warn("settlement proposal differs from this member's journal, voting against", "proposal", j.id, "from", s.From, "to", s.To)
	}
	return opt, ok
}

// castVote votes on a proposal; it reports whether the vote needs no
// retry.
func (c *Channel) castVote(pid uint64, opt protocol.VoteOption) bool {
	switch {
	case c.relaysFor():
		return c.carryOwnVote(pid, opt)
	case c.delegating():
		if settled, ok := c.voteThroughCandidate(pid, opt); ok {
			return settled
		}
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ApplyTimeout)
	defer cancel()
	err := c.cfg.Chain.Vote(ctx, c.id, pid, opt)
	switch {
	case err == nil:
		c.logger.Debug("voted on settlement", "proposal", pid, "option", opt)
		return true
	case errors.Is(err, contract.ErrAlreadyVoted), errors.Is(err, contract.ErrProposalClosed),
		errors.Is(err, contract.ErrNotEligible), errors.Is(err, contract.ErrNoProposal),
		errors.Is(err, contract.ErrNotMember):
		return true
	default:
		if c.ctx.Err() == nil {
			c.logger.Warn("vote failed", "proposal", pid, "error", err)
		}
		return false
	}
}

// pruneSettled drops the journal up to the chain's settled height once this
// member applied it.
func (c *Channel) pruneSettled() {
	h := c.chainSettled()
	if h == 0 {
		return
	}
	c.fsm.machine(func(m *fsm.Machine) {
		if m == nil || m.SettledHeight() >= h || m.Height() < h {
			return
		}
		if err := m.PruneTo(h); err != nil {
			c.logger.Warn("cannot prune the journal", "to", h, "error", err)
			return
		}
		c.logger.Debug("journal pruned", "to", h)
	})
}
