package fsm

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/protocol"
)

var (
	// ErrConfig means a Config is invalid.
	ErrConfig = errors.New("fsm: invalid config")
	// ErrWrongChannel means a batch names another channel.
	ErrWrongChannel = errors.New("fsm: batch for another channel")
	// ErrBatchShape means a batch is malformed: no entries, entries and
	// results that do not pair up, an entry without its body.
	ErrBatchShape = errors.New("fsm: malformed batch")
	// ErrHeight means a batch does not start right after the applied height.
	ErrHeight = errors.New("fsm: batch does not follow the applied height")
	// ErrBatchSignature means the leader's signature does not verify.
	ErrBatchSignature = errors.New("fsm: bad leader signature")
	// ErrNotLeader means the batch's signer was not the leader of its epoch,
	// or its epoch went backwards. Evidence is recorded.
	ErrNotLeader = errors.New("fsm: batch not signed by the leader of its epoch")
	// ErrTimestamp means the batch timestamp went backwards. Evidence is
	// recorded.
	ErrTimestamp = errors.New("fsm: batch timestamp went backwards")
	// ErrStaleEpoch means Propose was asked to sign for an epoch older than
	// the last batch's, or for a second leader in the same epoch.
	ErrStaleEpoch = errors.New("fsm: epoch older than the channel's")
	// ErrTooManyPending means Config.MaxPending batches are proposed and not
	// yet applied.
	ErrTooManyPending = errors.New("fsm: too many proposed batches pending")
	// ErrRange means a height range is outside the journal.
	ErrRange = errors.New("fsm: height outside the journal")
	// ErrSnapshot means a snapshot is corrupt, truncated or of another
	// channel or version.
	ErrSnapshot = errors.New("fsm: bad snapshot")
)

// EntryError is Propose's refusal of one entry: an honest leader never signs
// an entry that the followers would hold against it. The caller drops the
// entry and proposes the rest again.
type EntryError struct {
	Index  int
	Reason Reason
	Detail string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("fsm: entry %d refused: %s: %s", e.Index, e.Reason, e.Detail)
}

// Machine is the deterministic state machine of one channel. It has no
// goroutines, clock, randomness or I/O: package cluster drives it from the
// raft FSM goroutine, like etcd's RawNode under its node loop.
//
// Threading: a Machine is not safe for concurrent use. Every method must be
// called from one goroutine at a time (in cluster, the raft FSM goroutine,
// which also runs Propose under the same lock or loop). The one exception is
// the *Snapshot that Snapshot returns: it is immutable, and its WriteTo may
// run on any goroutine while the Machine goes on applying. Verify is a pure
// function, safe anywhere.
type Machine struct {
	cfg    Config
	exec   Executor
	logger hclog.Logger

	st     *state
	frozen bool // st is held by a Snapshot (or is base): clone before changing it

	// base is an immutable state at a batch end at or below the settled
	// height, and tail the batches applied since, in order: what a
	// snapshot carries (snapshot.go). PruneTo moves base up.
	base *state
	tail []tailBatch

	pending []*pendingBatch

	evidence      []*Evidence
	evidenceTotal uint64

	// checks are those of the apply or proposal running, nil between.
	checks *factChecks
	// nonceX caches the expansion of each sender's last nonce element for
	// the state hash; it is not state.
	nonceX nonceCache
	// expX caches resource and member expansions for the state hash; it
	// is not state either.
	expX *expCache

	stats Stats
}

// Stats counts what the machine did, for metrics.
type Stats struct {
	BatchesApplied uint64
	BatchesReused  uint64 // applied from a speculative Propose result
	BatchesRefused uint64
	PendingDropped uint64 // proposed batches invalidated by another batch
	Entries        uint64
	GasUsed        uint64
	Evidence       uint64 // pieces of evidence recorded
}

// Applied is what Apply did with one batch.
type Applied struct {
	// Outcomes holds this member's own result for each entry, in order.
	Outcomes []protocol.Outcome
	// Digest is D(last height) as this member computed it.
	Digest protocol.Hash
	// Reused says the results came from this member's own Propose.
	Reused bool
	// Dropped counts the proposed batches invalidated by this one.
	Dropped int
	// Faults counts the evidence recorded against this batch's leader.
	Faults int
}

// New returns a Machine at the genesis of cfg.
func New(cfg Config, exec Executor) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if exec == nil {
		return nil, fmt.Errorf("%w: nil Executor", ErrConfig)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	st := newState(&cfg)
	return &Machine{cfg: cfg, exec: exec, logger: logger, st: st, frozen: true, base: st, nonceX: nonceCache{}, expX: new(expCache)}, nil
}

// Apply checks and applies one leader-signed batch, as committed by raft.
//
// A batch that is malformed, of another channel, not at the next height, or
// whose signature fails is refused with an error and changes nothing. A
// batch whose signer was not the leader of its epoch (per facts and the
// epochs already applied) or whose timestamp goes backwards is refused too,
// and evidence is recorded. Otherwise every entry is applied with this
// member's own result; any difference from what the leader signed is
// recorded as evidence and never changes what is applied. Every member
// refuses the same batches, so refusals keep members in agreement: the
// caller logs a refused batch and goes on as if the log entry were empty.
//
// When b is the oldest batch this member proposed and the state is the one
// Propose assumed, Apply reuses the speculative results and skips the
// signature and leader checks of its own batch (Applied.Reused).
//
// facts are the settlement chain's answers, as for ApplyFacts, which a
// node uses. Nil facts are for a machine with no chain to ask (tests,
// single-member tools): every leader whose signature verifies, and every
// join and leave the channel's own rules allow, is accepted; the machine
// still requires epochs never to go backwards and one leader per epoch.
func (m *Machine) Apply(b *protocol.Batch, facts *Facts) (*Applied, error) {
	return m.apply(b, nil, &factChecks{facts: facts})
}

// ApplyFacts is Apply with the chain's answers given as data: the leader of
// the batch's epoch and the verdicts on its join and leave entries come
// from facts, so the verdict is a function of the batch, the state and
// facts alone. ver, when not nil, holds the signature verdicts of b
// (Verify), made ahead of time, on any goroutine.
//
// When facts lack one the batch needs, ApplyFacts changes nothing and
// returns a *NeedFactsError (ErrNeedFacts) listing every fact the batch
// needs that it lacks as far as the batch ran; the caller resolves them,
// adds them to facts and calls again. A batch this member proposed and
// reuses needs none.
func (m *Machine) ApplyFacts(b *protocol.Batch, ver *Verified, facts *Facts) (*Applied, error) {
	if facts == nil {
		facts = &Facts{}
	}
	if ver != nil && ver.Batch != b {
		return nil, fmt.Errorf("%w: verification of another batch", ErrBatchShape)
	}
	return m.apply(b, ver, &factChecks{facts: facts})
}

// apply is Apply; ver, when not nil, holds the signature verdicts of b.
func (m *Machine) apply(b *protocol.Batch, ver *Verified, checks *factChecks) (*Applied, error) {
	if err := m.checkShape(b); err != nil {
		m.stats.BatchesRefused++
		return nil, err
	}
	if a := m.reuse(b); a != nil {
		return a, nil
	}
	if ver == nil {
		ver = Verify(b)
	}
	if ver.leader != nil {
		m.stats.BatchesRefused++
		return nil, fmt.Errorf("%w: batch at height %d: %v", ErrBatchSignature, b.FirstHeight, ver.leader)
	}
	if err := m.checkAuthority(b, checks); err != nil {
		if !errors.Is(err, ErrNeedFacts) {
			m.stats.BatchesRefused++
		}
		return nil, err
	}

	l := newLayer(m.st.meta)
	l.epoch, l.leader, l.timestampMs = b.Epoch, b.Leader, b.TimestampMs
	v := &view{base: m.st, top: l, nonceX: m.nonceX, expX: m.expX}
	m.checks = checks
	outs, faults := m.run(v, b.Entries, b.FirstHeight, b.TimestampMs, ver.calls)
	m.checks = nil
	if checks.need != nil {
		// Nothing of this run is kept: the caller comes back with them.
		return nil, checks.need
	}
	dropped := m.dropPending()
	n := m.judge(b, m.st.digest, outs, faults)
	m.commit(b, l, outs)
	return &Applied{Outcomes: outs, Digest: l.digest, Dropped: dropped, Faults: n}, nil
}

func (m *Machine) checkShape(b *protocol.Batch) error {
	if b == nil {
		return fmt.Errorf("%w: nil", ErrBatchShape)
	}
	if b.Channel != m.cfg.Channel {
		return fmt.Errorf("%w: %s", ErrWrongChannel, b.Channel)
	}
	switch {
	case len(b.Entries) == 0:
		return fmt.Errorf("%w: no entries", ErrBatchShape)
	case len(b.Entries) > protocol.MaxBatchEntries:
		return fmt.Errorf("%w: %d entries", ErrBatchShape, len(b.Entries))
	case len(b.Entries) != len(b.Results):
		return fmt.Errorf("%w: %d entries but %d results", ErrBatchShape, len(b.Entries), len(b.Results))
	case b.FirstHeight == 0 || b.FirstHeight+uint64(len(b.Entries)) < b.FirstHeight:
		return fmt.Errorf("%w: heights from %d overflow", ErrBatchShape, b.FirstHeight)
	}
	for i := range b.Entries {
		if !wellFormed(&b.Entries[i]) {
			return fmt.Errorf("%w: entry %d is a %s without its body", ErrBatchShape, i, b.Entries[i].Kind)
		}
	}
	if b.FirstHeight != m.st.height+1 {
		return fmt.Errorf("%w: batch starts at %d, applied height is %d", ErrHeight, b.FirstHeight, m.st.height)
	}
	return nil
}

func wellFormed(en *protocol.Entry) bool {
	switch en.Kind {
	case protocol.EntryCall:
		return en.Call != nil
	case protocol.EntryJoin:
		return en.Join != nil
	case protocol.EntryLeave:
		return en.Leave != nil
	case protocol.EntryTick:
		return en.Tick != nil
	}
	return false
}

// checkAuthority checks the batch's epoch, leader and timestamp against the
// channel's history. The signature has been verified, so a failure is
// evidence against the signer.
// A missing fact returns its *NeedFactsError and records nothing.
func (m *Machine) checkAuthority(b *protocol.Batch, checks *factChecks) error {
	var reason Reason
	var detail string
	var sentinel error
	st := &m.st.meta
	switch {
	case b.Epoch < st.epoch:
		reason, sentinel = ReasonBadLeader, ErrNotLeader
		detail = fmt.Sprintf("epoch %d after epoch %d", b.Epoch, st.epoch)
	case b.Epoch == st.epoch && !st.leader.IsZero() && b.Leader != st.leader:
		reason, sentinel = ReasonBadLeader, ErrNotLeader
		detail = fmt.Sprintf("epoch %d already led by %s", b.Epoch, st.leader)
	case b.TimestampMs < st.timestampMs:
		reason, sentinel = ReasonBadTimestamp, ErrTimestamp
		detail = fmt.Sprintf("timestamp %d ms after %d ms", b.TimestampMs, st.timestampMs)
	}
	if reason == 0 {
		known, err := checks.checkLeader(b.Epoch, b.Leader)
		if !known {
			return checks.need
		}
		if err != nil {
			reason, sentinel = ReasonBadLeader, ErrNotLeader
			detail = err.Error()
		}
	}
	if reason == 0 {
		return nil
	}
	m.record(&Evidence{
		Reason: reason, Detail: detail, Leader: b.Leader, Epoch: b.Epoch,
		Height: b.LastHeight(), Index: -1, Batch: b.Bytes(),
	})
	return fmt.Errorf("%w: batch at height %d by %s: %s", sentinel, b.FirstHeight, b.Leader, detail)
}

// verifyCalls batch-verifies the signatures of the call entries and returns
// one verdict per entry.
func verifyCalls(entries []protocol.Entry) []error {
	txs := make([]*protocol.SignedTx, 0, len(entries))
	idx := make([]int, 0, len(entries))
	for i := range entries {
		if entries[i].Kind == protocol.EntryCall && entries[i].Call != nil {
			txs = append(txs, entries[i].Call)
			idx = append(idx, i)
		}
	}
	out := make([]error, len(entries))
	for j, err := range protocol.VerifyTxs(txs) {
		out[idx[j]] = err
	}
	return out
}

// judge compares this member's outcomes with what the leader signed and
// records evidence; it returns how many pieces it recorded.
func (m *Machine) judge(b *protocol.Batch, prior protocol.Hash, outs []protocol.Outcome, faults []fault) int {
	var enc []byte
	batchBytes := func() []byte {
		if enc == nil {
			enc = b.Bytes()
		}
		return enc
	}
	n := 0
	fi := 0
	mismatch := false
	for i := range outs {
		ev := &Evidence{Leader: b.Leader, Epoch: b.Epoch, Height: outs[i].Height, Index: i,
			Entry: b.Entries[i], Claimed: b.Results[i], Honest: outs[i].Result, HonestChangeSet: outs[i].ChangeSet}
		differs := b.Results[i] != outs[i].Result
		mismatch = mismatch || differs
		if fi < len(faults) && faults[fi].index == i {
			ev.Reason, ev.Detail = faults[fi].reason, faults[fi].detail
			fi++
		} else if differs {
			ev.Reason = ReasonResultMismatch
			ev.Detail = resultDiff(&b.Results[i], &outs[i].Result)
		} else {
			continue
		}
		ev.Batch = batchBytes()
		m.record(ev)
		n++
	}
	// The batch digest must chain the leader's own claimed results. When
	// every result matched, that chain is ours.
	claimed := outs[len(outs)-1].Digest
	if mismatch {
		claimed = prior
		for i := range outs {
			claimed = protocol.NextDigest(claimed, outs[i].Hash, &b.Results[i])
		}
	}
	if claimed != b.Digest {
		last := len(outs) - 1
		m.record(&Evidence{Reason: ReasonDigestMismatch, Leader: b.Leader, Epoch: b.Epoch,
			Height: outs[last].Height, Index: -1, Batch: batchBytes(), Honest: outs[last].Result,
			Detail: fmt.Sprintf("batch digest %s, its results chain to %s", b.Digest, claimed)})
		n++
	}
	return n
}

func resultDiff(claimed, own *protocol.Result) string {
	switch {
	case claimed.Status != own.Status:
		return fmt.Sprintf("status %s, ours %s", claimed.Status, own.Status)
	case claimed.AbortCode != own.AbortCode:
		return fmt.Sprintf("abort code %d, ours %d", claimed.AbortCode, own.AbortCode)
	case claimed.GasUsed != own.GasUsed:
		return fmt.Sprintf("gas %d, ours %d", claimed.GasUsed, own.GasUsed)
	case claimed.ChangeSet != own.ChangeSet:
		return "change set hash differs"
	case claimed.Events != own.Events:
		return "events hash differs"
	}
	return "output hash differs"
}

// commit folds a batch's layer and journal into the state, and keeps the
// batch and its layer in the tail.
func (m *Machine) commit(b *protocol.Batch, l *layer, outs []protocol.Outcome) {
	if m.frozen {
		m.st = m.st.clone()
		m.frozen = false
	}
	j := make([]journalEntry, len(outs))
	var gas uint64
	for i := range outs {
		j[i] = journalEntry{digest: outs[i].Digest, state: l.states[i], cs: outs[i].ChangeSet, size: entryBytes(&b.Entries[i]), pos: posInside}
		gas += outs[i].Result.GasUsed
	}
	j[len(j)-1].pos = posEnd
	m.st.fold(l, j)
	m.tail = append(m.tail, tailBatch{raw: b.Bytes(), l: l})
	m.stats.BatchesApplied++
	m.stats.Entries += uint64(len(outs))
	m.stats.GasUsed += gas
}

// Height returns the last applied height.
func (m *Machine) Height() uint64 { return m.st.height }

// LastDigest returns D(Height()).
func (m *Machine) LastDigest() protocol.Hash { return m.st.digest }

// Epoch returns the epoch and leader of the last applied batch (zero
// before the first).
func (m *Machine) Epoch() (uint64, protocol.Address) { return m.st.epoch, m.st.leader }

// TimestampMs returns the last applied batch's leader timestamp.
func (m *Machine) TimestampMs() uint64 { return m.st.timestampMs }

// Tick returns the last tick's number and timestamp (0, 0 before the first).
func (m *Machine) Tick() (number, timestampMs uint64) { return m.st.tick, m.st.tickMs }

// Closing returns the height of the channel's close request, 0 while it
// is open. From that height on the state is final: the machine refuses
// calls, joins and ticks, and the leader settles and closes the channel.
func (m *Machine) Closing() uint64 { return m.st.closing }

// HighestJoinSeq returns the highest join sequence number seen.
func (m *Machine) HighestJoinSeq() uint64 { return m.st.joinSeq }

// Nonce returns the last nonce sender used (0 before its first tx).
func (m *Machine) Nonce(sender protocol.Address) uint64 { return m.st.nonces[sender] }

// Member returns a member by address.
func (m *Machine) Member(a protocol.Address) (Member, bool) {
	mem, ok := m.st.members[a]
	return mem, ok
}

// Members returns the members sorted by address.
func (m *Machine) Members() []Member {
	return sortedMembers(m.st.members)
}

// MemberCount returns how many members the applied state has.
func (m *Machine) MemberCount() int { return len(m.st.members) }

func sortedMembers(ms map[protocol.Address]Member) []Member {
	out := make([]Member, 0, len(ms))
	for _, mem := range ms {
		out = append(out, mem)
	}
	slices.SortFunc(out, func(a, b Member) int { return a.Address.Compare(b.Address) })
	return out
}

// Get returns a resource of the applied state.
func (m *Machine) Get(k protocol.ResourceKey) ([]byte, bool) {
	v, ok := m.st.res[k]
	return v, ok
}

// Resources returns a copy of the applied contract state.
func (m *Machine) Resources() protocol.State { return m.st.res.Clone() }

// Stats returns the counters.
func (m *Machine) Stats() Stats {
	st := m.stats
	st.Evidence = m.evidenceTotal
	return st
}
