package fsm

import (
	"fmt"

	"github.com/scraft/scraft/protocol"
)

// Verdict is a member's judgement of a punish case.
type Verdict uint8

// Verdicts of JudgePunish.
const (
	// VerdictUnknown: this member cannot judge the case: the height is not
	// in its journal (not applied yet, or settled and pruned), or its own
	// result there is neither the target's nor the reporter's (the batch
	// is not the one this member applied at that height, or its state
	// differs from both).
	VerdictUnknown Verdict = iota
	// VerdictGuilty: this member's result at the height is the reporter's,
	// and differs from the one the target signed.
	VerdictGuilty
	// VerdictInnocent: this member's result at the height is the one the
	// target signed: the reporter's differs.
	VerdictInnocent
)

func (v Verdict) String() string {
	switch v {
	case VerdictGuilty:
		return "guilty"
	case VerdictInnocent:
		return "innocent"
	}
	return "unknown"
}

// JudgePunish judges a punish case by this member's own execution of the
// entry at pu.Height: which result — the one the target signed in
// pu.Batch, or the reporter's pu.Honest — this member computed there,
// from its own state at pu.Height-1.
//
// It does not run the entry again: the journal keeps D(h) for every
// unsettled height, and D(h) = NextDigest(D(h-1), entry, result) commits to
// the entry and to this member's own result for it (Apply always applies
// its own results, never the leader's). So NextDigest(D(h-1), entry,
// claimed) equals D(h) exactly when executing the entry from this member's
// state at h-1 gives the claimed result — a re-execution, answered from
// what the first one committed to. The answer depends on the case and the
// journal alone.
func (m *Machine) JudgePunish(pu *protocol.Punish) (Verdict, string) {
	b, err := protocol.DecodeBatch(pu.Batch)
	if err != nil {
		return VerdictUnknown, fmt.Sprintf("batch does not decode: %v", err)
	}
	if b.Channel != m.cfg.Channel || pu.Height < b.FirstHeight || pu.Height > b.LastHeight() ||
		len(b.Results) != len(b.Entries) {
		return VerdictUnknown, "height not in a batch of this channel"
	}
	h := pu.Height
	prev, ok := m.Digest(h - 1)
	if !ok || h > m.st.height {
		return VerdictUnknown, fmt.Sprintf("height %d not in the journal (%d..%d)", h, m.st.settled+1, m.st.height)
	}
	own, _ := m.Digest(h)
	i := h - b.FirstHeight
	eh := entryHash(&b.Entries[i])
	claimed := b.Results[i]
	switch {
	case protocol.NextDigest(prev, eh, &claimed) == own:
		return VerdictInnocent, "the target's result is this member's"
	case claimed != pu.Honest && protocol.NextDigest(prev, eh, &pu.Honest) == own:
		return VerdictGuilty, "the reporter's result is this member's; " + resultDiff(&claimed, &pu.Honest)
	}
	return VerdictUnknown, fmt.Sprintf("this member's result at height %d is neither the target's nor the reporter's", h)
}

// entryHash is the hash the digest chains for en (runEntry's).
func entryHash(en *protocol.Entry) protocol.Hash {
	if wellFormed(en) {
		return en.Hash()
	}
	return protocol.HashOf(protocol.DomainEntry, []byte{uint8(en.Kind)})
}
