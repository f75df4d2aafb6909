package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/scraft/scraft/protocol"
)

// ErrNeedFacts means ApplyFacts or ProposeFacts needs a fact of the
// settlement chain that its Facts do not hold. The error is a *NeedFactsError naming them; the
// machine is unchanged.
var ErrNeedFacts = errors.New("fsm: chain facts missing")

// Facts are the settlement chain's answers that a batch's checks need, as
// data: the leader of an epoch, whether the chain gave a join seq to a
// member, whether it ended a membership by an epoch. The caller resolves
// them before it hands the batch to ApplyFacts (or the entries to
// ProposeFacts), outside whatever lock guards the machine, so that the
// machine's verdict is a function of the batch, the state and the facts
// alone and the machine never waits on the chain.
//
// Each fact given to ApplyFacts must be one of the chain's history, the
// same on every member whenever it is asked, so that members that apply a
// batch at different times, or replay the log after a restart, agree:
// when the chain cannot tell yet, the caller waits for it rather than
// record a refusal. For ProposeFacts a refusal may also mean that the
// chain cannot tell now: the leader only decides what it signs, and must
// not sign what its followers would wait on.
//
// The zero Facts is empty; a Facts is not safe for concurrent use while it
// is being filled.
type Facts struct {
	leaders map[uint64]leaderFact
	joins   map[joinKey]verdict
	leaves  map[leaveKey]verdict
}

type leaderFact struct {
	leader     protocol.Address
	unrecorded bool
}

// verdict is a check's answer: nil accepts, an error refuses with its text.
type verdict struct{ err error }

type joinKey struct {
	member protocol.Address
	seq    uint64
	key    string
}

type leaveKey struct {
	member protocol.Address
	seq    uint64
	epoch  uint64
}

// SetLeader records the chain's leader of epoch.
func (f *Facts) SetLeader(epoch uint64, leader protocol.Address) {
	if f.leaders == nil {
		f.leaders = make(map[uint64]leaderFact)
	}
	f.leaders[epoch] = leaderFact{leader: leader}
}

// SetLeaderUnrecorded records that the chain is past epoch and keeps no
// record of who led it (a chain from before these records): its batches
// are accepted unjudged: the machine still requires epochs never to go
// backwards and one leader per epoch.
func (f *Facts) SetLeaderUnrecorded(epoch uint64) {
	if f.leaders == nil {
		f.leaders = make(map[uint64]leaderFact)
	}
	f.leaders[epoch] = leaderFact{unrecorded: true}
}

// Leader returns the fact recorded for epoch: the leader, or unrecorded.
func (f *Facts) Leader(epoch uint64) (leader protocol.Address, unrecorded, ok bool) {
	lf, ok := f.leaders[epoch]
	return lf.leader, lf.unrecorded, ok
}

// SetJoin records the chain's verdict on join: nil when the chain gave
// join's seq to its member and key, else why not. The chain gives each seq
// once and keeps who got it, even after the membership ends.
func (f *Facts) SetJoin(join protocol.MemberJoin, refusal error) {
	if f.joins == nil {
		f.joins = make(map[joinKey]verdict)
	}
	f.joins[joinKeyOf(join)] = verdict{refusal}
}

// SetLeave records the chain's verdict on the leave of member, who did not
// ask to leave in the channel, in a batch of epoch: nil when the chain
// ended the membership of member.JoinSeq in an epoch at most epoch, else
// why not. An honest leader of epoch saw the end on chain before it
// ordered the leave, so it always passes; a membership that ends later
// ends in a later epoch, so a refusal never turns into an acceptance.
func (f *Facts) SetLeave(member Member, epoch uint64, refusal error) {
	if f.leaves == nil {
		f.leaves = make(map[leaveKey]verdict)
	}
	f.leaves[leaveKey{member.Address, member.JoinSeq, epoch}] = verdict{refusal}
}

func joinKeyOf(j protocol.MemberJoin) joinKey {
	return joinKey{member: j.Member, seq: j.JoinSeq, key: string(j.PublicKey)}
}

// NeedFactsError lists the facts a batch needs that the Facts given to
// ApplyFacts or ProposeFacts lack. It matches ErrNeedFacts. A proposal
// never needs the leader fact: the machine signs for the epoch it is told.
type NeedFactsError struct {
	// Epoch is the batch's epoch, the one every fact below is for.
	Epoch uint64
	// Leader says the chain's leader of Epoch is needed.
	Leader bool
	// Joins are the join entries whose chain verdict is needed.
	Joins []protocol.MemberJoin
	// Leaves are the members whose leave verdict, for Epoch, is needed.
	Leaves []Member
}

func (e *NeedFactsError) Error() string {
	var parts []string
	if e.Leader {
		parts = append(parts, fmt.Sprintf("the leader of epoch %d", e.Epoch))
	}
	for _, j := range e.Joins {
		parts = append(parts, fmt.Sprintf("join seq %d of %s", j.JoinSeq, j.Member))
	}
	for _, m := range e.Leaves {
		parts = append(parts, fmt.Sprintf("the end of %s's membership (join seq %d) by epoch %d", m.Address, m.JoinSeq, e.Epoch))
	}
	return ErrNeedFacts.Error() + ": " + strings.Join(parts, ", ")
}

// Is makes the error match ErrNeedFacts.
func (e *NeedFactsError) Is(target error) bool { return target == ErrNeedFacts }

// factChecks are the chain checks of one apply or proposal: from Facts
// (a missing fact is noted in need, not guessed), or none at all for a
// machine without a chain (nil facts: Apply and Propose in tests and
// tools), which accepts every leader, join and leave the channel's own
// rules allow.
type factChecks struct {
	facts *Facts
	need  *NeedFactsError
}

func (c *factChecks) missing(epoch uint64) *NeedFactsError {
	if c.need == nil {
		c.need = &NeedFactsError{Epoch: epoch}
	}
	return c.need
}

// factChecks returns the checks of the apply or proposal running; outside
// one (a test running entries by hand) there is no chain.
func (m *Machine) factChecks() *factChecks {
	if m.checks != nil {
		return m.checks
	}
	return &factChecks{}
}

// checkLeader reports whether leader may sign in epoch: known is false
// when the fact is missing, else refusal says why not, nil for yes.
func (c *factChecks) checkLeader(epoch uint64, leader protocol.Address) (known bool, refusal error) {
	if c.facts == nil {
		return true, nil
	}
	want, unrecorded, ok := c.facts.Leader(epoch)
	switch {
	case !ok:
		c.missing(epoch).Leader = true
		return false, nil
	case unrecorded:
		return true, nil
	case want != leader:
		return true, fmt.Errorf("the chain's leader of epoch %d is %s, not %s", epoch, want, leader)
	}
	return true, nil
}

func (c *factChecks) checkJoin(j protocol.MemberJoin, epoch uint64) error {
	if c.facts == nil {
		return nil
	}
	v, ok := c.facts.joins[joinKeyOf(j)]
	if !ok {
		need := c.missing(epoch)
		for _, n := range need.Joins {
			if n.Member == j.Member && n.JoinSeq == j.JoinSeq && bytes.Equal(n.PublicKey, j.PublicKey) {
				return errNotKnown
			}
		}
		need.Joins = append(need.Joins, j)
		return errNotKnown
	}
	return v.err
}

func (c *factChecks) checkLeave(m Member, epoch uint64) error {
	if c.facts == nil {
		return nil
	}
	v, ok := c.facts.leaves[leaveKey{m.Address, m.JoinSeq, epoch}]
	if !ok {
		need := c.missing(epoch)
		for _, n := range need.Leaves {
			if n.Address == m.Address && n.JoinSeq == m.JoinSeq {
				return errNotKnown
			}
		}
		need.Leaves = append(need.Leaves, m)
		return errNotKnown
	}
	return v.err
}

// errNotKnown stands for a missing fact while the rest of the batch runs
// to find every fact it needs; nothing of that run is kept.
var errNotKnown = errors.New("fact not known")
