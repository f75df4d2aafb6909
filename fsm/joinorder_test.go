package fsm

import (
	"testing"

	"github.com/scraft/scraft/protocol"
)

// Members that join after the channel loaded reach it in any order: each
// node joins when it is ready, so a higher join seq may come first. Only the
// seq recorded at load bounds them (lower ones are in the genesis).
func TestJoinsInAnyOrderAfterLoad(t *testing.T) {
	alice, bob, carol, dave, eve := testKey(t, 0), testKey(t, 1), testKey(t, 2), testKey(t, 3), testKey(t, 4)
	m := newMachine(t, testConfig(alice, bob)) // genesis: seqs 1 and 2
	b := honestBatch(m, []protocol.Entry{join(dave, 4), join(carol, 3), join(eve, 2)}, 1, alice, 10)
	a := mustApply(t, m, roundTrip(t, b))
	want := []protocol.Status{protocol.StatusOK, protocol.StatusOK, protocol.StatusRejected}
	for i, o := range a.Outcomes {
		if o.Result.Status != want[i] {
			t.Fatalf("entry %d: %s (%s), want %s", i, o.Result.Status, o.Message, want[i])
		}
	}
	if _, ok := m.Member(carol.Address()); !ok || m.HighestJoinSeq() != 4 {
		t.Fatalf("carol joined after dave: member=%v, highest seq %d", ok, m.HighestJoinSeq())
	}
}
