package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// Leaving and closing (DESIGN §8, seed §8 "Leave", "Close").
//
// A request is a member-signed call in the channel, so it goes the way of
// every call (ordered by the leader, forwarded from followers, verified by
// every member) and every member agrees on it: scraft::leave or
// scraft::close, or a contract's scraft::Leave / scraft::Close event. The
// state machine records it as state (fsm: Member.LeaveHeight, Closing), so
// a new leader or a restarted node finds it.
//
// The leader (leaderRun.leaveWork, inside the settler) then:
//
//   - leave of member M asked at height h: settles at least to h at once
//     (whatever the settlement policy says); once the chain's settled
//     height reaches h, orders M's leave entry (fsm runs on_leave); once M is
//     out of the state, takes M's node, if any, out of the Raft
//     configuration, one change at a time and never itself (it hands
//     leadership over first). A member that asked the chain to leave
//     before the settlement was proposed is released by it (stake back);
//     each node asks the chain for its own member as soon as it sees its
//     request, and `scraft leave` does it for a user's key.
//   - close asked at height h: the state is final from h on (fsm refuses
//     calls, joins and ticks), the leader settles everything, then closes
//     the channel on chain.
//
// Every member node (Channel.runMembership) asks the chain to leave for its
// own member once it asked in the channel, hands Raft leadership over when
// it left while leading, and stops hosting the channel (retire) when the
// chain closed it or its member left. A retired channel keeps its data: a
// final Raft snapshot, and a "retired" file so that a restarted node opens
// it read-only (status works, calls answer ErrChannelClosed when the chain
// closed it, ErrClosed when this node's member left).

// Retirement reasons, as written in the channel's retired file and
// reported by Channel.Retired.
const (
	RetiredClosed = "closed"
	RetiredLeft   = "left"
)

// retiredFile is the marker of a retired channel in its folder.
const retiredFile = "retired"

// markLeaveEvery is how often a member node asks the chain again to let its
// member leave when the last attempt failed.
const markLeaveEvery = time.Second

// awaitMark is how long the leader waits, before it proposes a leave's
// settlement, for a leaving member's node to ask the chain to leave, so
// that this settlement releases its stake rather than the next one.
const awaitMark = 2 * time.Second

// retirement is the end of this node's hosting of a channel.
type retirement struct {
	once   sync.Once
	reason string
	began  chan struct{} // closed when retire starts
	ended  chan struct{} // closed when retire's goroutine is done, retired or interrupted
	done   chan struct{} // closed once the channel is closed here
}

func (r *retirement) init() {
	r.began, r.ended, r.done = make(chan struct{}), make(chan struct{}), make(chan struct{})
}

// Retired reports whether this node no longer hosts the channel live, and
// why: "closed" (closed on chain) or "left" (this node's member left it).
// A retired channel answers Status from its final state; calls get
// ErrClosed.
func (c *Channel) Retired() (reason string, ok bool) {
	r := &c.retired
	select {
	case <-r.done:
		return r.reason, true
	default:
		return "", false
	}
}

// retire stops hosting the channel: it lets this node apply what the chain
// settled (bounded), takes a final Raft snapshot so that a restart finds
// the final state, writes the retired file, closes the channel (loops,
// Raft, stores; subscribers see their feed end) and, for a closed channel,
// asks the chain to release the member's stake. It runs once, on its own
// goroutine: the caller may be one of the channel's loops, which Close
// waits for.
func (c *Channel) retire(reason string) {
	r := &c.retired
	r.once.Do(func() {
		r.reason = reason
		close(r.began)
		go func() {
			defer close(r.ended)
			c.finishRetire(r)
		}()
	})
}

// finishRetire is retire's goroutine. A retirement of a closed channel that
// the node's shutdown interrupts (c.ctx cancelled before the final state is
// applied and snapshotted) writes no retired file: the retired file
// promises the final state, and a restarted node that does not find it
// opens the channel live again and retires it once more.
func (c *Channel) finishRetire(r *retirement) {
	interrupted := func(at string) {
		c.logger.Info("channel retirement interrupted by shutdown: it resumes after a restart", "at", at)
	}
	if r.reason == RetiredClosed {
		want := c.chainSettled()
		h, ok := c.awaitApplied(want, c.cfg.ApplyTimeout)
		if c.ctx.Err() != nil {
			interrupted("applying the settled state")
			return
		}
		if !ok {
			c.logger.Warn("retiring below the chain's settled height: not applied in time", "height", h, "settled", want)
		}
	}
	snapErr := errors.New("shutting down")
	if c.ctx.Err() == nil {
		snapErr = c.raft.Snapshot().Error()
		if errors.Is(snapErr, raft.ErrNothingNewToSnapshot) {
			snapErr = nil
		}
	}
	switch {
	case snapErr == nil:
	case r.reason == RetiredClosed && c.ctx.Err() != nil:
		interrupted("the final snapshot")
		return
	default:
		c.logger.Warn("final snapshot failed", "error", snapErr)
	}
	if err := os.WriteFile(filepath.Join(c.dir, retiredFile), []byte(r.reason+"\n"), 0o600); err != nil {
		c.logger.Error("cannot mark the channel retired", "error", err)
	}
	// Retired from here: subscribers whose feed Close ends see why.
	close(r.done)
	if err := c.Close(); err != nil {
		c.logger.Warn("closing the retired channel", "error", err)
	}
	c.logger.Info("channel retired: no longer hosted live", "reason", r.reason, "height", c.Status().Height)
	if r.reason == RetiredClosed {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ApplyTimeout)
		defer cancel()
		// In a closed channel the chain releases a leaving member's stake
		// at once.
		if err := c.cfg.Chain.Leave(ctx, c.id); err != nil && !errors.Is(err, contract.ErrNotMember) {
			c.logger.Warn("cannot take the stake out of the closed channel", "error", err)
		} else if err == nil {
			c.logger.Info("left the closed channel on chain: stake released")
		}
	}
}

// awaitApplied waits until this node has applied height want, or timeout
// passes, or the channel is closed. It wakes on every batch applied, and
// every ChainPollInterval for a state Raft restored from a snapshot, which
// no batch announces. It returns the height applied and whether it reached
// want.
func (c *Channel) awaitApplied(want uint64, timeout time.Duration) (uint64, bool) {
	// Subscribed before the height is read: a batch applied in between is
	// delivered.
	feed, cancel := c.Subscribe(16)
	defer func() { cancel() }()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(c.cfg.ChainPollInterval)
	defer tick.Stop()
	for {
		var h uint64
		c.fsm.machine(func(m *fsm.Machine) {
			if m != nil {
				h = m.Height()
			}
		})
		if h >= want {
			return h, true
		}
		select {
		case <-c.ctx.Done():
			return h, false
		case <-deadline.C:
			return h, false
		case <-tick.C:
		case _, open := <-feed:
			if !open {
				// Dropped for falling behind (or closed with the channel,
				// which the next round sees): subscribe again.
				cancel()
				feed, cancel = c.Subscribe(16)
			}
		}
	}
}

// retiredOnDisk returns the reason in the channel's retired file, if any.
func retiredOnDisk(dir string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(dir, retiredFile))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// openRetired makes a channel opened from a retired folder read-only: its
// state is the final snapshot Raft restored; Raft and the stores are
// closed and no loop runs.
func (c *Channel) openRetired(reason string) {
	r := &c.retired
	r.once.Do(func() {
		r.reason = reason
		close(r.began)
		c.Close()
		close(r.done)
		close(r.ended)
	})
	c.logger.Info("channel is retired: serving its final state read-only", "reason", reason, "height", c.Status().Height)
}

// Leave orders a member's signed request to leave (a scraft::leave call)
// and returns once it is done: the channel settled past it and the member
// is out of the channel's state and, if it runs a node, out of the Raft
// configuration. It refuses at once, before ordering anything, when the
// member is the channel's only member (ErrLastMember) or its node is the
// last one or the others that answer are too few for a quorum
// (ErrQuorum). Submitting the same tx again is safe (idempotent by hash).
func (c *Channel) Leave(ctx context.Context, tx *protocol.SignedTx) error {
	if tx == nil || tx.Tx.Function != protocol.RequestLeave || len(tx.Tx.Args) != 0 {
		return fmt.Errorf("%w: want a %s call without args", ErrNotRequest, protocol.RequestLeave)
	}
	who := tx.Tx.Sender
	var member bool
	var members int
	c.fsm.machine(func(m *fsm.Machine) {
		if m != nil {
			_, member = m.Member(who)
			members = len(m.Members())
		}
	})
	if !member {
		if c.leftRecently(who) {
			return nil
		}
		return fmt.Errorf("leave: %w: %s", ErrNotMember, who)
	}
	if members == 1 {
		return fmt.Errorf("leave: %w: %s is the only member; close the channel instead", ErrLastMember, who)
	}
	if err := c.checkLeaveQuorum(ctx, who); err != nil {
		return err
	}
	out, err := c.Submit(ctx, tx)
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	if err := requestOutcome(out); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	c.logger.Info("leave requested", "member", who, "height", out.Height)
	return c.waitLeft(ctx, who, out.Height)
}

// RequestClose orders a member's signed request to close the channel (a
// scraft::close call) and returns once the chain has closed it: the final
// state is settled and every node stops hosting the channel.
func (c *Channel) RequestClose(ctx context.Context, tx *protocol.SignedTx) error {
	if tx == nil || tx.Tx.Function != protocol.RequestClose || len(tx.Tx.Args) != 0 {
		return fmt.Errorf("%w: want a %s call without args", ErrNotRequest, protocol.RequestClose)
	}
	if reason, ok := c.Retired(); ok && reason == RetiredClosed {
		return nil
	}
	out, err := c.Submit(ctx, tx)
	switch {
	case errors.Is(err, ErrChannelClosed):
		// Closing already (another member asked first): wait for it.
	case err != nil:
		return fmt.Errorf("close: %w", err)
	default:
		if err := requestOutcome(out); err != nil {
			return fmt.Errorf("close: %w", err)
		}
		c.logger.Info("close requested", "member", tx.Tx.Sender, "height", out.Height)
	}
	for {
		if reason, ok := c.Retired(); ok {
			if reason == RetiredClosed {
				return nil
			}
			return ErrClosed
		}
		read := c.view.refreshed()
		if rec := c.view.channel(); rec != nil && rec.Closed {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("close: waiting for the channel to settle and close on chain: %w", ctx.Err())
		case <-read:
		case <-c.retired.done:
		}
	}
}

// requestOutcome turns a request's outcome into an error unless it passed.
func requestOutcome(out *protocol.Outcome) error {
	switch out.Result.Status {
	case protocol.StatusOK:
		return nil
	case protocol.StatusNotMember:
		return fmt.Errorf("%w: %s", ErrNotMember, out.Message)
	case protocol.StatusBadNonce:
		return fmt.Errorf("%w: %s", ErrStaleNonce, out.Message)
	default:
		return fmt.Errorf("%w: %s: %s", ErrRefused, out.Result.Status, out.Message)
	}
}

// leftRecently reports whether a left the channel in the outcomes this
// node still keeps, so that a repeated leave request answers done.
func (c *Channel) leftRecently(a protocol.Address) bool {
	want := leaveEntryHash(a)
	c.subs.Lock()
	defer c.subs.Unlock()
	lo, ok := c.recent.first()
	if !ok {
		return false
	}
	hi, _ := c.recent.last()
	for h := hi; h >= lo && h > 0; h-- {
		if o, ok := c.recent.at(h); ok && o.Kind == protocol.EntryLeave && o.Hash == want {
			return o.Result.Status == protocol.StatusOK
		}
	}
	return false
}

func leaveEntryHash(a protocol.Address) protocol.Hash {
	en := protocol.Entry{Kind: protocol.EntryLeave, Leave: &protocol.MemberLeave{Member: a}}
	return en.Hash()
}

// checkLeaveQuorum refuses a leave that would take the channel's last node
// away, or leave fewer voters that answer than a quorum of those left.
func (c *Channel) checkLeaveQuorum(ctx context.Context, who protocol.Address) error {
	srv, ok := c.raftServer(who)
	if !ok || srv.Suffrage != raft.Voter {
		return nil
	}
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return translateRaft(err)
	}
	var rest []raft.Server
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter && s.ID != srv.ID {
			rest = append(rest, s)
		}
	}
	if len(rest) == 0 {
		return fmt.Errorf("leave: %w: %s runs the channel's only node; close the channel instead", ErrQuorum, who)
	}
	live := 0
	for _, s := range rest {
		if string(s.ID) == c.me().String() {
			live++
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
		_, err := c.node.peers.status(pctx, string(s.Address), c.id)
		cancel()
		if err == nil {
			live++
		}
	}
	if need := len(rest)/2 + 1; live < need {
		return fmt.Errorf("leave: %w: without %s the channel keeps %d voters of which %d answer, %d are needed",
			ErrQuorum, who, len(rest), live, need)
	}
	return nil
}

// waitLeft waits until member, who asked to leave at height h, is out of
// the state, the chain settled past h, and its node is out of the Raft
// configuration as this node sees it.
func (c *Channel) waitLeft(ctx context.Context, who protocol.Address, h uint64) error {
	for {
		out := false
		c.fsm.machine(func(m *fsm.Machine) {
			if m != nil {
				_, in := m.Member(who)
				out = !in
			}
		})
		// The view takes in the settlement as the chain feed reports it.
		read := c.view.refreshed()
		if out {
			if c.chainSettled() >= h {
				_, inRaft := c.raftServer(who)
				if !inRaft || who == c.me() {
					return nil
				}
			}
		}
		if _, ok := c.Retired(); ok {
			if out {
				return nil
			}
			return ErrClosed
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("leave: waiting for the settlement and the leave of %s: %w", who, ctx.Err())
		case <-read:
		case <-time.After(c.cfg.ChainPollInterval):
		}
	}
}

// runMembership is the member side of leaving and closing, for the
// channel's lifetime: it asks the chain to let this node's member leave
// once it asked in the channel, hands Raft leadership over once the member
// is out while this node leads, and retires the channel here once the
// chain closed it or the member left. It wakes when the view takes in the
// channel's record (a close acts at once) and on a tick that checks the
// applied state.
func (c *Channel) runMembership(ctx context.Context) {
	t := time.NewTicker(c.cfg.ChainPollInterval)
	defer t.Stop()
	var wasMember bool
	var lastMark, lastTransfer, lastChainCheck time.Time
	refreshed := c.view.refreshed() // re-armed as it fires: a read taken in meanwhile wakes the next round (settler)
	for {
		select {
		case <-ctx.Done():
			return
		case <-refreshed:
			refreshed = c.view.refreshed()
		case <-t.C:
		}
		if rec := c.view.channel(); rec != nil && rec.Closed {
			c.logger.Info("channel closed on chain")
			c.retire(RetiredClosed)
			return
		}
		var ready, in bool
		var leaveH uint64
		c.fsm.machine(func(m *fsm.Machine) {
			if m == nil {
				return
			}
			ready = true
			var mem fsm.Member
			mem, in = m.Member(c.me())
			leaveH = mem.LeaveHeight
		})
		if !ready {
			continue
		}
		switch {
		case in:
			wasMember = true
			if leaveH == 0 {
				continue
			}
			if time.Since(lastMark) > markLeaveEvery {
				lastMark = time.Now()
				c.askChainToLeave()
			}
			// The settlement that released this member on chain also took
			// the chain's leadership from it: it can neither sign nor
			// claim, so another node must lead to order its leave.
			if chainLeader, _, _ := c.view.current(); c.raft.State() == raft.Leader && chainLeader != c.me() &&
				time.Since(lastTransfer) > c.cfg.ElectionTimeout {
				lastTransfer = time.Now()
				c.logger.Info("leaving member lost the chain's leadership: handing Raft leadership over")
				if err := c.raft.LeadershipTransfer().Error(); err != nil {
					c.logger.Warn("leadership transfer failed", "error", err)
				}
			}
		case wasMember:
			// This member left the channel (its leave entry applied).
			if time.Since(lastMark) > markLeaveEvery {
				lastMark = time.Now()
				c.askChainToLeave()
			}
			if c.raft.State() == raft.Leader {
				// The leader removes every other server; never itself.
				if time.Since(lastTransfer) > c.cfg.ElectionTimeout {
					lastTransfer = time.Now()
					c.logger.Info("member left the channel: handing Raft leadership over")
					if err := c.raft.LeadershipTransfer().Error(); err != nil {
						c.logger.Warn("leadership transfer failed", "error", err)
					}
				}
				continue
			}
			// The leader does not tell a server it removed: no contact
			// for a while, or our own configuration, says it did.
			_, inCfg := c.raftServer(c.me())
			if !inCfg || time.Since(c.raft.LastContact()) > 4*c.cfg.ElectionTimeout {
				c.retire(RetiredLeft)
				return
			}
		default:
			// Not in the state and never seen in it here: a node catching
			// up to its join, or one restarted after its member left.
			if time.Since(lastChainCheck) < markLeaveEvery {
				continue
			}
			lastChainCheck = time.Now()
			cctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
			rec, err := c.cfg.Chain.Channel(cctx, c.id)
			cancel()
			if err == nil && rec.LastJoinSeq > 0 {
				if _, onChain := rec.Member(c.me()); !onChain {
					c.logger.Info("this node's member is neither in the channel nor on chain")
					c.retire(RetiredLeft)
					return
				}
			}
		}
	}
}

// askChainToLeave asks the chain to let this node's member leave, unless
// it is not a member there or asked already.
func (c *Channel) askChainToLeave() {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ApplyTimeout)
	defer cancel()
	rec, err := c.cfg.Chain.Channel(ctx, c.id)
	if err != nil {
		return
	}
	m, ok := rec.Member(c.me())
	if !ok || m.Leaving() {
		return
	}
	if err := c.cfg.Chain.Leave(ctx, c.id); err != nil && !errors.Is(err, contract.ErrLeaving) {
		if c.ctx.Err() == nil {
			c.logger.Warn("cannot ask the chain to leave", "error", err)
		}
		return
	}
	c.logger.Info("asked the chain to leave: the next settlement releases the stake")
}

// leaveWork is the leader's state for leaves and closing, kept by the
// settler for one leader run.
type leaveWork struct {
	chain  *settlement.ChannelInfo        // the channel's members on chain, as the view last read them
	seen   map[protocol.Address]time.Time // when a leave request was first seen
	warned map[protocol.Address]bool
	out    map[protocol.Address]leftServer // servers of members that left, still in Raft
	closed bool
}

// leftServer is where and when the leader first saw a left member's
// server still in the Raft configuration.
type leftServer struct {
	index uint64
	at    time.Time
}

func newLeaveWork() *leaveWork {
	return &leaveWork{seen: map[protocol.Address]time.Time{}, warned: map[protocol.Address]bool{},
		out: map[protocol.Address]leftServer{}}
}

// leaveWork does the leader's part of leaving and closing, one step per
// round, while no settlement of its own is open. It returns the height the
// channel must be settled to now, whatever the policy (0 for none).
func (run *leaderRun) leaveWork(ctx context.Context, w *leaveWork, settled uint64) uint64 {
	c := run.c
	var members []fsm.Member
	var closing, height uint64
	ok := false
	c.fsm.machine(func(m *fsm.Machine) {
		if m != nil {
			ok = true
			members, closing, height = m.Members(), m.Closing(), m.Height()
		}
	})
	if !ok {
		return 0
	}
	if closing > 0 {
		return run.closeWork(ctx, w, settled, height)
	}
	chainOK := run.readChainMembers(w)
	inState := make(map[protocol.Address]bool, len(members))
	for _, mem := range members {
		inState[mem.Address] = true
	}
	var urgent uint64
	var ready *fsm.Member
	for i := range members {
		mem := &members[i]
		var onChain *settlement.MemberInfo
		if chainOK {
			onChain, _ = w.chain.Member(mem.Address)
		}
		// Out of the channel on chain (left, or forced out; a member
		// that joined again holds a new join seq): it leaves the channel
		// too once settled past its request, if it made one.
		goneOnChain := chainOK && (onChain == nil || onChain.JoinSeq != mem.JoinSeq) && mem.JoinSeq <= w.chain.LastJoinSeq
		if mem.LeaveHeight == 0 && !goneOnChain {
			if onChain != nil && onChain.Leaving() {
				// Asked the chain only: the next settlement lets it go.
				urgent = max(urgent, height)
			}
			continue
		}
		if mem.LeaveHeight == 0 && !run.chainBacksLeave(ctx, w, *mem) {
			continue
		}
		if len(members) == 1 {
			if !w.warned[mem.Address] {
				w.warned[mem.Address] = true
				c.logger.Warn("the channel's only member asked to leave: it stays until the channel is closed", "member", mem.Address)
			}
			continue
		}
		if mem.LeaveHeight > settled {
			first, ok := w.seen[mem.Address]
			if !ok {
				first = time.Now()
				w.seen[mem.Address] = first
			}
			// A node asks the chain for its own member: wait a moment for
			// it, so that this settlement releases the stake.
			if _, isNode := c.raftServer(mem.Address); isNode && chainOK && onChain != nil && !onChain.Leaving() && time.Since(first) < awaitMark {
				continue
			}
			urgent = max(urgent, height)
			continue
		}
		if ready == nil {
			ready = mem
		}
	}
	// Members that left the channel and asked the chain after the last
	// settlement was proposed: one more settlement releases them.
	if chainOK {
		for _, m := range w.chain.Members {
			if m.Leaving() && !inState[m.Address] {
				urgent = max(urgent, height)
			}
		}
	}
	if ready != nil {
		run.orderLeave(ctx, *ready)
		return urgent
	}
	run.removeLeftServers(w, inState)
	return urgent
}

// readChainMembers takes the channel's members on chain from the view,
// which the chain feed keeps current (a member that joins, asks to leave,
// leaves or is forced out is news of the channel); it reads the chain
// when the view holds no member list. It reports whether w.chain is set.
func (run *leaderRun) readChainMembers(w *leaveWork) bool {
	c := run.c
	info := c.view.members()
	if info == nil {
		if c.refreshChain() != nil {
			return false
		}
		if info = c.view.members(); info == nil {
			return false
		}
	}
	w.chain = info
	return true
}

// chainBacksLeave reports whether the followers will accept the leave
// entry of mem, a member that did not ask to leave in the channel: the
// chain's history must show its membership ended by this run's epoch
// (the leave fact of fsm.Facts, chainEnded). A leader the chain has moved past does
// not order it; the next one will.
func (run *leaderRun) chainBacksLeave(ctx context.Context, w *leaveWork, mem fsm.Member) bool {
	c := run.c
	cctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
	defer cancel()
	decided, err := c.chainEnded(cctx, mem, run.epoch)
	if decided && err == nil {
		return true
	}
	if decided && !w.warned[mem.Address] {
		w.warned[mem.Address] = true
		c.logger.Info("not ordering the leave of a member gone on chain", "member", mem.Address, "epoch", run.epoch, "reason", err)
	}
	return false
}

// orderLeave orders the leave entry of a member whose request is settled.
func (run *leaderRun) orderLeave(ctx context.Context, mem fsm.Member) {
	c := run.c
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	out, err := c.submitSystem(cctx, protocol.Entry{Kind: protocol.EntryLeave, Leave: &protocol.MemberLeave{Member: mem.Address}})
	switch {
	case err != nil:
		if ctx.Err() == nil {
			c.logger.Warn("cannot order a leave", "member", mem.Address, "error", err)
		}
	case out.Result.Status != protocol.StatusOK:
		c.logger.Warn("leave entry refused", "member", mem.Address, "status", out.Result.Status, "message", out.Message)
	default:
		c.logger.Info("member left the channel", "member", mem.Address, "asked_at", mem.LeaveHeight, "height", out.Height)
	}
}

// removeLeftServers takes one server whose member left the channel out of
// the Raft configuration, against the configuration it decided on. The
// leader never removes itself: it hands leadership over first. It waits
// for the server to apply the log up to where the leader first saw its
// member out (so the node sees its own leave and retires), for at most
// awaitMark, and not for a server that does not answer.
func (run *leaderRun) removeLeftServers(w *leaveWork, inState map[protocol.Address]bool) {
	c := run.c
	cf := c.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	servers := cf.Configuration().Servers
	voters := 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	for _, s := range servers {
		a, err := protocol.ParseAddress(string(s.ID))
		if err != nil || inState[a] {
			continue
		}
		if a == c.me() {
			c.logger.Info("this node's member left: handing Raft leadership over")
			if err := c.raft.LeadershipTransfer().Error(); err != nil {
				c.logger.Warn("leadership transfer failed", "error", err)
			}
			return
		}
		if s.Suffrage == raft.Voter && voters <= 1 {
			return
		}
		if !run.leftServerCaughtUp(w, a, s) {
			return
		}
		if err := c.raft.RemoveServer(s.ID, cf.Index(), c.cfg.ApplyTimeout).Error(); err != nil {
			c.logger.Warn("cannot remove a left member's node", "member", a, "error", err)
			return
		}
		c.logger.Info("removed a left member's node from Raft", "member", a, "address", s.Address)
		return
	}
}

// leftServerCaughtUp reports whether the server of a member that left may
// go: it applied the log up to where the leader first saw the member out,
// it does not answer, or awaitMark has passed since.
func (run *leaderRun) leftServerCaughtUp(w *leaveWork, a protocol.Address, s raft.Server) bool {
	c := run.c
	first, ok := w.out[a]
	if !ok {
		first = leftServer{index: c.raft.AppliedIndex(), at: time.Now()}
		w.out[a] = first
	}
	if time.Since(first.at) > awaitMark {
		return true
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ElectionTimeout)
	defer cancel()
	resp, err := c.node.peers.status(ctx, string(s.Address), c.id)
	return err != nil || resp.AppliedIndex >= first.index
}

// closeWork settles a closing channel to its last height, then closes it
// on chain. It returns the height to settle to now.
func (run *leaderRun) closeWork(ctx context.Context, w *leaveWork, settled, height uint64) uint64 {
	c := run.c
	if settled < height {
		return height
	}
	if w.closed {
		return 0
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	err := c.cfg.Chain.CloseChannel(cctx, c.id)
	switch {
	case err == nil:
		c.logger.Info("channel closed on chain", "settled", settled)
	case errors.Is(err, contract.ErrChannelClosed):
	default:
		if ctx.Err() == nil {
			c.logger.Warn("cannot close the channel on chain", "error", err)
		}
		return 0
	}
	w.closed = true
	_ = c.refreshChain()
	return 0
}
