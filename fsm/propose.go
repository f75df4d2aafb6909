package fsm

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/scraft/scraft/protocol"
)

// pendingBatch is a batch this member proposed and signed, not yet applied:
// its layer holds its effects on top of the state and the batches before it.
type pendingBatch struct {
	batch *protocol.Batch
	body  []byte // the signed body, to recognise the batch when raft returns it
	prior protocol.Hash
	layer *layer
	outs  []protocol.Outcome
}

// Propose is the leader's side of Apply. It executes entries on top of the
// applied state and of every batch proposed but not yet applied, signs the
// batch with key for epoch, and remembers the results: when raft commits the
// same batch and Apply meets it with the state it assumed, Apply reuses them
// instead of executing twice.
//
// timestampMs is the leader's clock; Propose uses the last batch's timestamp
// instead if the clock went backwards. Call signatures are not verified
// unless Config.VerifyOnPropose is set: the leader verifies each tx when it
// is submitted. Propose refuses, with an *EntryError and no change, an
// entry that followers would hold against the leader (a bad signature, a
// join, leave or tick the rules refuse); calls that merely fail (bad nonce,
// not a member, an abort) are included with their failure status.
//
// Propose asks no chain: it accepts every join and leave the channel's own
// rules allow, as Apply with nil facts does (tests, tools). A node calls
// ProposeFacts.
func (m *Machine) Propose(entries []protocol.Entry, epoch uint64, key *protocol.Key, timestampMs uint64) (*protocol.Batch, []protocol.Outcome, error) {
	return m.propose(entries, epoch, key, timestampMs, &factChecks{})
}

// ProposeFacts is Propose with the settlement chain's verdicts on the join
// entries, and on the leaves of members that did not ask to leave, given
// as data (Facts), so that the caller reads the chain before it takes
// whatever lock guards the machine. A refused fact refuses its entry with
// an *EntryError. When facts lack one the entries need, ProposeFacts
// changes nothing and returns a *NeedFactsError (ErrNeedFacts) naming
// every one it lacks as far as the entries ran; the caller resolves them
// and calls again. Which it needs depends on the state and on the entries
// before them (a leave of a member that asked in the same batch needs
// none), so it is asked, not guessed.
func (m *Machine) ProposeFacts(entries []protocol.Entry, epoch uint64, key *protocol.Key, timestampMs uint64, facts *Facts) (*protocol.Batch, []protocol.Outcome, error) {
	if facts == nil {
		facts = &Facts{}
	}
	return m.propose(entries, epoch, key, timestampMs, &factChecks{facts: facts})
}

func (m *Machine) propose(entries []protocol.Entry, epoch uint64, key *protocol.Key, timestampMs uint64, checks *factChecks) (*protocol.Batch, []protocol.Outcome, error) {
	switch {
	case len(entries) == 0:
		return nil, nil, fmt.Errorf("%w: no entries", ErrBatchShape)
	case len(entries) > protocol.MaxBatchEntries:
		return nil, nil, fmt.Errorf("%w: %d entries, at most %d", ErrBatchShape, len(entries), protocol.MaxBatchEntries)
	case len(m.pending) >= m.cfg.MaxPending:
		return nil, nil, fmt.Errorf("%w: %d", ErrTooManyPending, len(m.pending))
	case key == nil:
		return nil, nil, fmt.Errorf("%w: nil key", ErrConfig)
	}
	for i := range entries {
		if !wellFormed(&entries[i]) {
			return nil, nil, &EntryError{Index: i, Reason: ReasonBadEntry, Detail: fmt.Sprintf("%s without its body", entries[i].Kind)}
		}
	}
	top := m.st.meta
	below := make([]*layer, len(m.pending))
	for i, p := range m.pending {
		below[i] = p.layer
	}
	if n := len(below); n > 0 {
		top = below[n-1].meta
	}
	leader := key.Address()
	if epoch < top.epoch || (epoch == top.epoch && !top.leader.IsZero() && top.leader != leader) {
		return nil, nil, fmt.Errorf("%w: epoch %d by %s, channel at epoch %d by %s", ErrStaleEpoch, epoch, leader, top.epoch, top.leader)
	}
	ts := max(timestampMs, top.timestampMs)

	var sigErrs []error
	if m.cfg.VerifyOnPropose {
		sigErrs = verifyCalls(entries)
	}
	l := newLayer(top)
	l.epoch, l.leader, l.timestampMs = epoch, leader, ts
	v := &view{base: m.st, below: below, top: l, nonceX: m.nonceX, expX: m.expX}
	first := top.height + 1
	m.checks = checks
	outs, faults := m.run(v, entries, first, ts, sigErrs)
	m.checks = nil
	if checks.need != nil {
		return nil, nil, checks.need
	}
	if len(faults) > 0 {
		f := faults[0]
		return nil, nil, &EntryError{Index: f.index, Reason: f.reason, Detail: f.detail}
	}
	b := &protocol.Batch{
		Channel:     m.cfg.Channel,
		Epoch:       epoch,
		FirstHeight: first,
		TimestampMs: ts,
		Entries:     slices.Clone(entries),
		Results:     make([]protocol.Result, len(outs)),
		Digest:      l.digest,
	}
	for i := range outs {
		b.Results[i] = outs[i].Result
	}
	b.Sign(key)
	m.pending = append(m.pending, &pendingBatch{batch: b, body: b.Body(), prior: top.digest, layer: l, outs: outs})
	return b, outs, nil
}

// reuse applies b from the speculative results of Propose when b is the
// oldest pending batch and the state is the one it was computed on. It
// returns nil when b must be executed.
func (m *Machine) reuse(b *protocol.Batch) *Applied {
	if len(m.pending) == 0 {
		return nil
	}
	p := m.pending[0]
	pb := p.batch
	if p.prior != m.st.digest || pb.FirstHeight != b.FirstHeight || pb.Epoch != b.Epoch ||
		pb.Digest != b.Digest || len(pb.Entries) != len(b.Entries) || !bytes.Equal(pb.Signature, b.Signature) ||
		!bytes.Equal(p.body, b.Body()) {
		return nil
	}
	m.pending[0] = nil
	m.pending = m.pending[1:]
	m.commit(b, p.layer, p.outs)
	m.stats.BatchesReused++
	return &Applied{Outcomes: p.outs, Digest: p.layer.digest, Reused: true}
}

// dropPending forgets every proposed batch; their entries must be proposed
// again by whoever leads next. It returns how many there were.
func (m *Machine) dropPending() int {
	n := len(m.pending)
	if n > 0 {
		m.logger.Debug("dropping proposed batches", "count", n, "first_height", m.pending[0].batch.FirstHeight)
		m.stats.PendingDropped += uint64(n)
	}
	m.pending = nil
	return n
}

// DropPending forgets the batches proposed and not yet applied, e.g. on
// losing leadership, and returns them so their entries can be resubmitted.
func (m *Machine) DropPending() []*protocol.Batch {
	out := make([]*protocol.Batch, len(m.pending))
	for i, p := range m.pending {
		out[i] = p.batch
	}
	m.dropPending()
	return out
}

// Pending returns how many proposed batches await Apply, and the height the
// next Propose would start at.
func (m *Machine) Pending() (count int, nextHeight uint64) {
	if n := len(m.pending); n > 0 {
		return n, m.pending[n-1].layer.height + 1
	}
	return 0, m.st.height + 1
}
