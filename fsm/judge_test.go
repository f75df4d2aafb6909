package fsm

import (
	"testing"

	"github.com/scraft/scraft/protocol"
)

// TestJudgePunish: a member that applied the lying batch and one that
// applied the honest batch both find the target guilty of the evidence the
// first recorded; a case built against an honest result (a false report) is
// found innocent; heights outside the journal and foreign batches cannot be
// judged.
func TestJudgePunish(t *testing.T) {
	alice, bob := testKey(t, 0), testKey(t, 1)
	cfg := testConfig(alice, bob)
	var evs []*Evidence
	cfgA := cfg
	cfgA.OnEvidence = func(ev *Evidence) { evs = append(evs, ev) }
	a, b := newMachine(t, cfgA), newMachine(t, cfg)
	first := honestBatch(a, []protocol.Entry{call(alice, 1, "put", "x=1")}, 1, alice, 10)
	mustApply(t, a, first)
	mustApply(t, b, first)

	honest := honestBatch(a, []protocol.Entry{call(alice, 2, "put", "x=2"), call(bob, 1, "put", "y=1")}, 1, alice, 20)
	lying := roundTrip(t, honest)
	lying.Results[1].GasUsed++
	lying.Sign(alice)
	mustApply(t, a, roundTrip(t, lying))
	mustApply(t, b, roundTrip(t, honest))

	var pu protocol.Punish
	for _, ev := range evs {
		if ev.Reason == ReasonResultMismatch {
			pu = ev.Punish()
		}
	}
	if pu.Height != 3 {
		t.Fatalf("evidence %+v", evs)
	}
	// A false report: the honest batch, with a made-up "honest" result.
	falsePu := pu
	falsePu.Batch = honest.Bytes()
	falsePu.Honest.GasUsed += 7

	foreign := pu
	other := roundTrip(t, lying)
	other.Entries[1] = call(bob, 9, "put", "z=9")
	other.Sign(alice)
	foreign.Batch = other.Bytes()

	beyond := pu
	beyond.Height = 4

	tests := []struct {
		name string
		pu   protocol.Punish
		want Verdict
	}{
		{"lie", pu, VerdictGuilty},
		{"false report", falsePu, VerdictInnocent},
		{"entry this member did not apply", foreign, VerdictUnknown},
		{"height outside the batch", beyond, VerdictUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for name, m := range map[string]*Machine{"reporter": a, "other": b} {
				if got, why := m.JudgePunish(&tc.pu); got != tc.want {
					t.Errorf("%s: %s (%s), want %s", name, got, why, tc.want)
				}
			}
		})
	}
	if err := b.PruneTo(3); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.JudgePunish(&pu); got != VerdictUnknown {
		t.Fatalf("pruned height: %s", got)
	}
}
