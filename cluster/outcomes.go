package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
)

// recentOutcomes is a bounded ring of the channel's last applied outcomes,
// consecutive in height, so that a subscriber can resume from a height
// without a gap and a resubmitted tx finds its first outcome by hash. It is
// only in memory: after a restart it starts empty and fills from the
// heights applied since.
//
// It is guarded by the channel's subs lock, which onApplied holds while it
// hands a batch to the subscribers: reading the ring and registering a
// subscription under that lock lets nothing fall between the two.
type recentOutcomes struct {
	buf    []protocol.Outcome // capacity Config.RecentOutcomes, allocated on first use
	start  int                // index of the oldest outcome in buf
	n      int                // outcomes held
	byHash map[protocol.Hash]uint64
}

// add appends the outcomes of one applied batch. Outcomes that do not follow
// the last held height (a snapshot installed over the log) restart the ring.
func (r *recentOutcomes) add(size int, outs []protocol.Outcome) {
	if size <= 0 || len(outs) == 0 {
		return
	}
	if r.buf == nil {
		r.buf = make([]protocol.Outcome, size)
		r.byHash = make(map[protocol.Hash]uint64, min(size, 1024))
	}
	if last, ok := r.last(); ok && outs[0].Height != last+1 {
		r.reset()
	}
	for i := range outs {
		o := outs[i]
		if r.n == len(r.buf) {
			old := &r.buf[r.start]
			if r.byHash[old.Hash] == old.Height {
				delete(r.byHash, old.Hash)
			}
			*old = protocol.Outcome{}
			r.start = (r.start + 1) % len(r.buf)
			r.n--
		}
		r.buf[(r.start+r.n)%len(r.buf)] = o
		r.n++
		if o.Kind == protocol.EntryCall {
			if _, ok := r.byHash[o.Hash]; !ok {
				r.byHash[o.Hash] = o.Height
			}
		}
	}
}

func (r *recentOutcomes) reset() {
	clear(r.buf)
	clear(r.byHash)
	r.start, r.n = 0, 0
}

// first and last return the lowest and highest heights held.
func (r *recentOutcomes) first() (uint64, bool) {
	if r.n == 0 {
		return 0, false
	}
	return r.buf[r.start].Height, true
}

func (r *recentOutcomes) last() (uint64, bool) {
	if r.n == 0 {
		return 0, false
	}
	return r.buf[(r.start+r.n-1)%len(r.buf)].Height, true
}

// at returns the outcome at height h, if held.
func (r *recentOutcomes) at(h uint64) (*protocol.Outcome, bool) {
	lo, ok := r.first()
	if !ok || h < lo || h-lo >= uint64(r.n) {
		return nil, false
	}
	return &r.buf[(r.start+int(h-lo))%len(r.buf)], true
}

// after returns copies of the outcomes above height from, or false when the
// ring does not hold every height from+1 up to its last one.
func (r *recentOutcomes) after(from uint64) ([]protocol.Outcome, bool) {
	lo, ok := r.first()
	if !ok || from+1 < lo {
		return nil, false
	}
	hi, _ := r.last()
	if from >= hi {
		return nil, true
	}
	out := make([]protocol.Outcome, 0, hi-from)
	for h := from + 1; h <= hi; h++ {
		o, _ := r.at(h)
		out = append(out, *o)
	}
	return out, true
}

// recordApplied keeps a batch's outcomes in the ring. It runs in onApplied
// with the subs lock held.
func (c *Channel) recordApplied(outs []protocol.Outcome) {
	c.recent.add(c.cfg.RecentOutcomes, outs)
}

// recentOutcome returns the first outcome of a tx by hash if the ring still
// holds it.
func (c *Channel) recentOutcome(h protocol.Hash) (*protocol.Outcome, bool) {
	c.subs.Lock()
	defer c.subs.Unlock()
	height, ok := c.recent.byHash[h]
	if !ok {
		return nil, false
	}
	o, ok := c.recent.at(height)
	if !ok {
		return nil, false
	}
	cp := *o
	return &cp, true
}

// knownOutcome returns the first outcome of an applied tx from the outcome
// cache or, when the cache no longer has it, the ring of recent outcomes.
func (c *Channel) knownOutcome(h protocol.Hash) (*protocol.Outcome, bool) {
	if out, ok := c.fsm.outcome(h); ok {
		return out, true
	}
	return c.recentOutcome(h)
}

// Feed is a subscription of a channel's applied outcomes resumed after a
// height: Backlog holds the retained outcomes after that height, then C
// delivers the batches applied later, with no gap and no repeat between
// the two. When the ring no longer holds the heights after the requested
// one, Snapshot is the applied state and Backlog is empty: C then follows
// the snapshot's height.
type Feed struct {
	// Height is the applied height when the feed started: the last height
	// of Backlog, or the snapshot's.
	Height   uint64
	Snapshot *StateSnapshot
	Backlog  []protocol.Outcome
	C        <-chan Applied
	// Cancel ends the subscription; it is safe to call more than once.
	Cancel func()
}

// SubscribeFrom subscribes to the applied outcomes after height from. The
// outcomes from+1 up to the applied height come from the ring of recent
// outcomes (Config.RecentOutcomes), the later ones live, in order; a from
// of 0, or older than the ring holds (or after a restart), gets a snapshot
// instead. A
// from above the applied height is ErrNotReady; so is a channel without
// its genesis yet. A subscriber that falls more than buffer batches behind
// has its channel closed.
func (c *Channel) SubscribeFrom(from uint64, buffer int) (*Feed, error) {
	var f *Feed
	var err error
	c.fsm.machine(func(m *fsm.Machine) {
		if m == nil {
			err = fmt.Errorf("%w: channel %s has no genesis yet", ErrNotReady, c.id)
			return
		}
		height := m.Height()
		if from > height {
			err = fmt.Errorf("%w: height %d above the applied %d", ErrNotReady, from, height)
			return
		}
		// onApplied runs under the FSM lock held here, so the ring and the
		// machine agree on the applied height.
		c.subs.Lock()
		backlog, ok := c.recent.after(from)
		if last, held := c.recent.last(); ok && from < height && (!held || last != height) {
			ok = false
		}
		c.subs.Unlock()
		f = &Feed{Height: height}
		if from > 0 && (ok || from == height) {
			f.Backlog = backlog
		} else {
			f.Snapshot = &StateSnapshot{Height: height, Digest: m.LastDigest(), State: m.Resources()}
			for _, mem := range m.Members() {
				f.Snapshot.Members = append(f.Snapshot.Members, mem.Address)
			}
		}
		f.C, f.Cancel = c.Subscribe(buffer)
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// MemberStatus is one channel member as this node sees it.
type MemberStatus struct {
	Address protocol.Address
	// Lag is how many heights the member's node has applied fewer than
	// this node, read from its node now; -1 when unknown (the member runs
	// no node in the channel's Raft group, or did not answer).
	Lag int64
	// HeartbeatAge is the age of the member's last chain heartbeat at the
	// chain's time; negative when unknown.
	HeartbeatAge time.Duration
	// Valid says the chain counts the member as alive.
	Valid  bool
	Leader bool
}

// MemberStatuses returns every member of the applied state with its lag
// and chain heartbeat age, and the chain's settled height (0 when the
// chain could not be read). Lags come from a peer status request to each
// member node of the Raft configuration, all at once, bounded by ctx and
// the PeerTimeout.
func (c *Channel) MemberStatuses(ctx context.Context) ([]MemberStatus, uint64) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
	defer cancel()
	var height uint64
	var members []protocol.Address
	c.fsm.machine(func(m *fsm.Machine) {
		if m != nil {
			height = m.Height()
			for _, mem := range m.Members() {
				members = append(members, mem.Address)
			}
		}
	})
	leader, _, _ := c.view.current()
	out := make([]MemberStatus, len(members))
	index := make(map[protocol.Address]int, len(members))
	for i, a := range members {
		out[i] = MemberStatus{Address: a, Lag: -1, HeartbeatAge: -1, Leader: a == leader}
		index[a] = i
	}

	var wg sync.WaitGroup
	lags := make([]int64, len(members))
	for i := range lags {
		lags[i] = -1
	}
	self := c.cfg.Key.Address()
	if i, ok := index[self]; ok {
		lags[i] = 0
	}
	if cf := c.raft.GetConfiguration(); cf.Error() == nil {
		for _, s := range cf.Configuration().Servers {
			a, err := protocol.ParseAddress(string(s.ID))
			i, ok := index[a]
			if err != nil || !ok || a == self {
				continue
			}
			wg.Add(1)
			go func(i int, addr raft.ServerAddress) {
				defer wg.Done()
				resp, err := c.node.peers.status(ctx, string(addr), c.id)
				if err != nil {
					return
				}
				if resp.Height >= height {
					lags[i] = 0
				} else {
					lags[i] = int64(height - resp.Height)
				}
			}(i, s.Address)
		}
	}

	var settled uint64
	if rec, err := c.cfg.Chain.Channel(ctx, c.id); err == nil {
		settled = rec.SettledHeight
		for _, m := range rec.Members {
			i, ok := index[m.Address]
			if !ok {
				continue
			}
			out[i].Valid = m.Valid
			if age := rec.AtMs - m.LastHeartbeat; age >= 0 {
				out[i].HeartbeatAge = time.Duration(age) * time.Millisecond
			}
		}
	}
	wg.Wait()
	for i := range out {
		out[i].Lag = lags[i]
	}
	return out, settled
}
