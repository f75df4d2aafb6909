package fsm

import (
	"fmt"

	"github.com/scraft/scraft/protocol"
)

// Reason says what a leader did wrong.
type Reason uint8

// Evidence reasons.
const (
	// ReasonResultMismatch: the leader's result for an entry differs from
	// the one this member computed.
	ReasonResultMismatch Reason = iota + 1
	// ReasonDigestMismatch: the batch digest does not chain the leader's own
	// claimed results from the digest before the batch.
	ReasonDigestMismatch
	// ReasonBadSignature: the leader included a call whose sender signature
	// does not verify (or a key that does not match the sender).
	ReasonBadSignature
	// ReasonBadJoin: a join the chain or the channel's rules refuse.
	ReasonBadJoin
	// ReasonBadLeave: a leave of someone who is not a member, or of a
	// member that neither asked to leave in the channel nor had its
	// membership ended on chain by the batch's epoch (Facts.SetLeave).
	ReasonBadLeave
	// ReasonBadTick: a tick with the wrong number or spacing, or a tick in a
	// channel without ticks.
	ReasonBadTick
	// ReasonBadEntry: an entry of unknown kind or with no body.
	ReasonBadEntry
	// ReasonBadLeader: the batch was signed by someone who was not the
	// leader of its epoch, or its epoch went backwards.
	ReasonBadLeader
	// ReasonBadTimestamp: the batch timestamp went backwards.
	ReasonBadTimestamp
	// ReasonClosing: a call ordered after the channel's close request.
	ReasonClosing
	// ReasonBadGenesis: a genesis log command that differs from what the
	// chain holds for the channel (code, initial state, members and join
	// seqs, gas limit, tick interval). Evidence.Batch holds the genesis.
	// The genesis carries no signature, so the evidence names no leader.
	ReasonBadGenesis
	// ReasonBadSnapshot: a snapshot whose state is not the one the chain
	// settled, or whose batches do not apply (package cluster). It names
	// the member that sent it when known; Detail says what failed.
	ReasonBadSnapshot
	// ReasonEquivocation: the leader signed two different batches of one
	// epoch for the same height: Batch is the one this member applied,
	// Conflict the other (package cluster finds it, e.g. in a snapshot's
	// batches). The two signatures are the proof; nothing is re-executed.
	ReasonEquivocation
)

func (r Reason) String() string {
	switch r {
	case ReasonResultMismatch:
		return "result differs"
	case ReasonDigestMismatch:
		return "batch digest does not chain the leader's results"
	case ReasonBadSignature:
		return "call with a bad sender signature"
	case ReasonBadJoin:
		return "join refused"
	case ReasonBadLeave:
		return "leave refused"
	case ReasonBadTick:
		return "bad tick"
	case ReasonBadEntry:
		return "malformed entry"
	case ReasonBadLeader:
		return "batch signed by someone not the leader of its epoch"
	case ReasonBadTimestamp:
		return "batch timestamp went backwards"
	case ReasonClosing:
		return "call after the close request"
	case ReasonBadGenesis:
		return "genesis differs from the chain"
	case ReasonBadSnapshot:
		return "snapshot does not check out"
	case ReasonEquivocation:
		return "two batches signed for one height"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Evidence is what a member keeps when a leader-signed batch is wrong: enough
// for anyone to re-execute and judge. The member itself has applied its own
// honest results.
type Evidence struct {
	Reason Reason
	// Detail explains the fault to people.
	Detail string
	Leader protocol.Address
	Epoch  uint64
	// Height is the entry's height; for batch-level faults, the batch's last
	// height.
	Height uint64
	// Index is the entry's index in the batch, -1 for batch-level faults.
	Index int
	// Batch is the leader-signed batch, canonical encoding. It holds the
	// sender-signed tx, the leader's claimed results and its signature.
	Batch []byte
	// Entry is the entry at Index (zero for batch-level faults).
	Entry protocol.Entry
	// Claimed is the leader's result for the entry; Honest and
	// HonestChangeSet are this member's.
	Claimed         protocol.Result
	Honest          protocol.Result
	HonestChangeSet protocol.ChangeSet
	// Conflict is, for ReasonEquivocation, the other batch the leader
	// signed for Height (canonical encoding).
	Conflict []byte
}

// Punish returns the payload of a punish proposal against the leader.
func (ev *Evidence) Punish() protocol.Punish {
	reason := ev.Reason.String()
	if ev.Detail != "" {
		reason += ": " + ev.Detail
	}
	if len(reason) > protocol.MaxNameLen {
		reason = reason[:protocol.MaxNameLen]
	}
	return protocol.Punish{
		Target:          ev.Leader,
		Height:          ev.Height,
		Batch:           ev.Batch,
		Honest:          ev.Honest,
		HonestChangeSet: ev.HonestChangeSet,
		Reason:          reason,
		Conflict:        ev.Conflict,
	}
}

func (ev *Evidence) String() string {
	return fmt.Sprintf("evidence against %s (epoch %d) at height %d: %s: %s",
		ev.Leader, ev.Epoch, ev.Height, ev.Reason, ev.Detail)
}

// AppliedBatches returns the batches this member applied since its
// snapshot base, oldest first, as the leader signed them: what a batch
// another member shows for the same heights is compared with.
func (m *Machine) AppliedBatches() [][]byte {
	out := make([][]byte, len(m.tail))
	for i := range m.tail {
		out[i] = m.tail[i].raw
	}
	return out
}

// record keeps ev in the bounded list and notifies the caller.
func (m *Machine) record(ev *Evidence) {
	m.evidenceTotal++
	if len(m.evidence) == m.cfg.MaxEvidence {
		copy(m.evidence, m.evidence[1:])
		m.evidence = m.evidence[:len(m.evidence)-1]
	}
	m.evidence = append(m.evidence, ev)
	m.logger.Warn("leader fault", "leader", ev.Leader, "epoch", ev.Epoch, "height", ev.Height,
		"reason", ev.Reason.String(), "detail", ev.Detail)
	if m.cfg.OnEvidence != nil {
		m.cfg.OnEvidence(ev)
	}
}

// Evidence returns the evidence kept, oldest first (at most
// Config.MaxEvidence), and how many pieces were recorded in all.
func (m *Machine) Evidence() ([]*Evidence, uint64) {
	return append([]*Evidence(nil), m.evidence...), m.evidenceTotal
}

// EvidenceTotal returns how many pieces of evidence the machine recorded
// since it started (Evidence's second result, without the copy).
func (m *Machine) EvidenceTotal() uint64 { return m.evidenceTotal }
