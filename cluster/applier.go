package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
)

// committedBatch is one committed log command as the applier takes it:
// the command (a kind byte, then the body) and, when the caller decoded
// and verified it ahead, the result. Raft's FSM is one source; a relay of
// committed batches, or the batches a snapshot carries after its settled
// state, can be others.
type committedBatch struct {
	data []byte
	pre  *decoded // nil: the applier decodes
}

// factSource resolves the settlement chain's facts a batch needs.
type factSource interface {
	// known adds the facts of b known without asking the chain.
	known(b *protocol.Batch, facts *fsm.Facts)
	// resolve adds the facts need names, waiting for the chain until it
	// decides them; it fails only when ctx ends.
	resolve(ctx context.Context, need *fsm.NeedFactsError, facts *fsm.Facts) error
}

// applier drives a channel's fsm.Machine with committed batches. The
// machine lock (mu) guards execution only: what a batch needs from outside
// (its decoding and signature checks, the chain's facts, the machine of a
// genesis with its code) is got before the lock is taken, so the client
// API, Status and the leader's batcher never wait on the chain behind an
// apply.
//
// Apply calls take turns (feedMu); Raft's FSM goroutine is one caller.
type applier struct {
	id     protocol.ChannelID
	self   protocol.Address // this node: it need not verify its own batches
	logger hclog.Logger
	// build makes the Machine of a genesis: it loads the code and checks
	// the genesis against the chain (a *badGenesisError when it differs).
	build func(context.Context, *genesis) (*fsm.Machine, error)
	// onEvidence, when set, is told the evidence of each refused genesis.
	onEvidence func(*fsm.Evidence)
	// facts resolves the chain's facts of a batch.
	facts factSource
	// applied is told each applied batch, its log command as Raft
	// committed it, and its outcomes, in order, under mu.
	applied func(b *protocol.Batch, cmd []byte, a *fsm.Applied)
	// hold, when set, waits before a batch of an epoch with an offence
	// against its leader until the chain judges it, and returns the
	// batch's refusal, if any (punish.go); err is ctx's.
	hold func(ctx context.Context, b *protocol.Batch) (refusal, err error)

	// feedMu orders the feeds: one Apply (or Restore) at a time. gen and
	// m change only with it held, so its holder reads them without mu.
	feedMu sync.Mutex

	mu     sync.Mutex
	m      *fsm.Machine // nil until the genesis command is applied
	gen    *genesis
	genErr error // why the genesis could not be loaded
	// badGen is the evidence of the latest refused geneses and snapshots
	// (at most maxBadGenesis), badGenTotal counts them all.
	badGen      []*fsm.Evidence
	badGenTotal uint64
	cache       *outcomeCache
	// abandoned is set when an apply was cut short by shutdown while it
	// waited for the chain: the machine stays behind what its feed counts
	// as applied, so it publishes nothing more and takes no snapshot.
	abandoned atomic.Bool
	// summary is what Status reads of the applied state, published after
	// every apply and restore.
	summary atomic.Pointer[appliedSummary]
}

// appliedSummary is the part of the applied state Status reports.
type appliedSummary struct {
	height   uint64
	digest   protocol.Hash
	members  int
	evidence uint64
	// stats are the machine's counters (batches applied, reused, refused,
	// proposals dropped), exported by machineCollector.
	stats fsm.Stats
}

// publishLocked stores the summary of the machine's applied state.
func (a *applier) publishLocked() {
	if a.m == nil {
		a.summary.Store(nil)
		return
	}
	a.summary.Store(&appliedSummary{height: a.m.Height(), digest: a.m.LastDigest(), members: a.m.MemberCount(),
		evidence: a.m.EvidenceTotal() + a.badGenTotal, stats: a.m.Stats()})
}

// applyResult is the response to one log command, which raft hands to the
// ApplyFuture on the node that applied it.
type applyResult struct {
	batch   *protocol.Batch
	applied *fsm.Applied
	err     error
}

// decoded is a batch log command decoded, and verified unless this node
// signed it (then the machine reuses what it proposed and verifies only
// if it cannot).
type decoded struct {
	b   *protocol.Batch
	ver *fsm.Verified
	err error
	// cmd is the log command b was decoded from (kind byte included).
	cmd []byte
}

func (a *applier) decode(data []byte) *decoded {
	b, err := protocol.DecodeBatch(data)
	if err != nil {
		return &decoded{err: err}
	}
	d := &decoded{b: b}
	if b.Leader != a.self {
		d.ver = fsm.Verify(b)
	}
	return d
}

// Apply applies committed commands in order and returns one result each.
// When ctx ends while a command waits for the chain, that command and the
// rest are not applied: the applier is abandoned.
func (a *applier) Apply(ctx context.Context, cmds []committedBatch) []*applyResult {
	a.feedMu.Lock()
	defer a.feedMu.Unlock()
	out := make([]*applyResult, len(cmds))
	for i, cb := range cmds {
		if len(cb.data) == 0 {
			continue
		}
		if a.abandoned.Load() {
			out[i] = &applyResult{err: fmt.Errorf("%w: shutting down mid-apply", ErrClosed)}
			continue
		}
		switch cb.data[0] {
		case logGenesis:
			out[i] = a.applyGenesis(ctx, cb.data[1:])
		case logBatch:
			pre := cb.pre
			if pre == nil {
				pre = a.decode(cb.data[1:])
			}
			pre.cmd = cb.data
			out[i] = a.applyBatch(ctx, pre)
		default:
			out[i] = &applyResult{err: fmt.Errorf("%w: unknown log command %d", ErrRefused, cb.data[0])}
		}
	}
	return out
}

// maxBadGenesis bounds the refused geneses whose evidence is kept.
const maxBadGenesis = 16

// applyGenesis builds the machine of a genesis command, outside the lock,
// and installs it. A genesis that differs from the chain is recorded as
// evidence and not installed: the channel waits for a correct one.
func (a *applier) applyGenesis(ctx context.Context, body []byte) *applyResult {
	if a.gen != nil {
		return &applyResult{err: fmt.Errorf("%w: second genesis", ErrRefused)}
	}
	g, err := decodeGenesis(body)
	if err != nil {
		return &applyResult{err: err}
	}
	m, err := a.build(ctx, g)
	for errors.Is(err, errChainUnanswered) && ctx.Err() == nil {
		// Without its machine the member can apply nothing that follows:
		// wait for the chain rather than give up on the channel until a
		// restart.
		a.logger.Warn("cannot read the channel's genesis from the chain; trying again", "error", err)
		m, err = a.build(ctx, g)
	}
	if err != nil && ctx.Err() != nil {
		// Shutdown: the next start builds it again.
		a.abandoned.Store(true)
		return &applyResult{err: fmt.Errorf("%w: shutting down while loading the genesis", ErrClosed)}
	}
	var bad *badGenesisError
	if errors.As(err, &bad) {
		a.refuseGenesis(body, bad)
		return &applyResult{err: fmt.Errorf("%w: %v", ErrRefused, err)}
	}
	if err != nil {
		a.logger.Error("cannot load the channel's genesis", "error", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen, a.m, a.genErr = g, m, err
	a.publishLocked()
	return &applyResult{err: err}
}

// refuseGenesis records the evidence of a genesis that differs from the
// chain. It names no leader: a genesis carries no signature.
func (a *applier) refuseGenesis(body []byte, bad *badGenesisError) {
	ev := &fsm.Evidence{Reason: fsm.ReasonBadGenesis, Detail: bad.detail, Index: -1, Batch: bytes.Clone(body)}
	a.mu.Lock()
	if len(a.badGen) == maxBadGenesis {
		a.badGen = append(a.badGen[:0], a.badGen[1:]...)
	}
	a.badGen = append(a.badGen, ev)
	a.badGenTotal++
	a.mu.Unlock()
	if a.onEvidence != nil {
		a.onEvidence(ev)
	}
}

// refusedGeneses returns the evidence of the latest refused geneses and
// how many were refused in all.
func (a *applier) refusedGeneses() ([]*fsm.Evidence, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.badGen), a.badGenTotal
}

// applyBatch applies one batch: it executes it under the lock with the
// facts known so far and, when the machine names facts it lacks, resolves
// them with the lock released and executes again. A batch needs no fact it
// was not executed with, so the second run decides it.
func (a *applier) applyBatch(ctx context.Context, pre *decoded) *applyResult {
	b := pre.b
	if pre.err != nil {
		return &applyResult{err: pre.err}
	}
	if a.hold != nil {
		refusal, err := a.hold(ctx, b)
		if err != nil {
			a.abandoned.Store(true)
			return &applyResult{batch: b, err: fmt.Errorf("%w: shutting down mid-apply", ErrClosed)}
		}
		if refusal != nil {
			a.logger.Warn("batch refused", "first_height", b.FirstHeight, "epoch", b.Epoch, "leader", b.Leader, "error", refusal)
			return &applyResult{batch: b, err: fmt.Errorf("%w: %v", ErrRefused, refusal)}
		}
	}
	facts := &fsm.Facts{}
	a.facts.known(b, facts)
	for {
		a.mu.Lock()
		if a.m == nil {
			a.mu.Unlock()
			return &applyResult{batch: b, err: fmt.Errorf("%w: batch before genesis", ErrRefused)}
		}
		if b.LastHeight() <= a.m.Height() {
			// Restored past it: a snapshot fetched from a member after
			// the leader's was refused may be ahead of the log.
			a.mu.Unlock()
			return &applyResult{batch: b, err: fmt.Errorf("%w: batch of heights up to %d, already at %d", ErrRefused, b.LastHeight(), a.m.Height())}
		}
		res, err := a.m.ApplyFacts(b, pre.ver, facts)
		var need *fsm.NeedFactsError
		if errors.As(err, &need) {
			a.mu.Unlock()
			if err := a.facts.resolve(ctx, need, facts); err != nil {
				a.abandoned.Store(true)
				return &applyResult{batch: b, err: fmt.Errorf("%w: shutting down mid-apply", ErrClosed)}
			}
			continue
		}
		defer a.mu.Unlock()
		a.publishLocked() // a refused batch may have recorded evidence
		if err != nil {
			a.logger.Warn("batch refused", "first_height", b.FirstHeight, "epoch", b.Epoch, "leader", b.Leader, "error", err)
			return &applyResult{batch: b, err: fmt.Errorf("%w: %v", ErrRefused, err)}
		}
		for i := range res.Outcomes {
			if res.Outcomes[i].Kind == protocol.EntryCall {
				a.cache.put(&res.Outcomes[i])
			}
		}
		if a.applied != nil {
			a.applied(b, pre.cmd, res)
		}
		return &applyResult{batch: b, applied: res}
	}
}

// machine runs fn with the machine under the lock; m is nil before the
// genesis.
func (a *applier) machine(fn func(m *fsm.Machine)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn(a.m)
}

// outcome returns the cached outcome of a tx.
func (a *applier) outcome(h protocol.Hash) (*protocol.Outcome, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cache.get(h)
}
