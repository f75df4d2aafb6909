package fsm

import (
	"errors"
	"fmt"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// TestApplyFacts: a batch applied with the chain's facts as data. While a
// fact it needs is missing the machine changes nothing and names every
// missing fact; with them the verdict is the one the checkers would give,
// and it is the same on two machines that got the facts in different
// orders.
func TestApplyFacts(t *testing.T) {
	alice, bob, carol, dave := testKey(t, 0), testKey(t, 1), testKey(t, 2), testKey(t, 3)
	cfg := testConfig(alice, bob)
	a, b := newMachine(t, cfg), newMachine(t, cfg)
	entries := []protocol.Entry{call(alice, 1, "put", "X=1"), join(carol, 3), join(dave, 4), leave(bob)}
	batch := honestBatch(a, entries, 2, alice, 100)

	var ev []*Evidence
	a.cfg.OnEvidence = func(e *Evidence) { ev = append(ev, e) }
	facts := &Facts{}
	_, err := a.ApplyFacts(roundTrip(t, batch), nil, facts)
	var need *NeedFactsError
	if !errors.As(err, &need) || !errors.Is(err, ErrNeedFacts) || !need.Leader || need.Epoch != 2 || len(need.Joins) != 0 {
		t.Fatalf("without facts: %v, want the leader of epoch 2 only (the entries run after it)", err)
	}
	facts.SetLeader(2, alice.Address())
	_, err = a.ApplyFacts(roundTrip(t, batch), nil, facts)
	if !errors.As(err, &need) || need.Leader || len(need.Joins) != 2 || len(need.Leaves) != 1 ||
		need.Joins[0].Member != carol.Address() || need.Joins[1].Member != dave.Address() ||
		need.Leaves[0].Address != bob.Address() || need.Leaves[0].JoinSeq != 2 {
		t.Fatalf("with the leader: %v, want both joins and bob's leave", err)
	}
	if a.Height() != 0 || len(ev) != 0 || a.Stats().BatchesRefused != 0 {
		t.Fatalf("a batch missing facts changed the machine: height %d, evidence %v, stats %+v", a.Height(), ev, a.Stats())
	}
	facts.SetJoin(*entries[1].Join, nil)
	facts.SetJoin(*entries[2].Join, errors.New("not on chain"))
	facts.SetLeave(memberOf(bob, 2), 2, nil)
	got, err := a.ApplyFacts(roundTrip(t, batch), nil, facts)
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.Status{protocol.StatusOK, protocol.StatusOK, protocol.StatusRejected, protocol.StatusOK}
	if fmt.Sprint(statuses(got.Outcomes)) != fmt.Sprint(want) || got.Faults != 1 {
		// The leader signed dave's join as accepted.
		t.Fatalf("statuses %v, %d faults; want %v and 1", statuses(got.Outcomes), got.Faults, want)
	}

	// The same facts, set up front in another order, through the checkers.
	other := &Facts{}
	other.SetLeave(memberOf(bob, 2), 2, nil)
	other.SetJoin(*entries[2].Join, errors.New("not on chain"))
	other.SetJoin(*entries[1].Join, nil)
	other.SetLeader(2, alice.Address())
	if _, err := b.ApplyFacts(roundTrip(t, batch), Verify(batch), other); err == nil {
		t.Fatal("a verification of another batch was accepted")
	}
	vb := roundTrip(t, batch)
	if _, err := b.ApplyFacts(vb, Verify(vb), other); err != nil {
		t.Fatal(err)
	}
	requireSameState(t, a, b)

	// A leader the chain did not record: refused, with evidence.
	c := newMachine(t, cfg)
	wrong := &Facts{}
	wrong.SetLeader(2, bob.Address())
	if _, err := c.ApplyFacts(roundTrip(t, batch), nil, wrong); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a batch by another than the epoch's leader: %v, want ErrNotLeader", err)
	}
	if evs, _ := c.Evidence(); len(evs) != 1 || evs[0].Reason != ReasonBadLeader {
		t.Fatalf("evidence %v, want one %s", evs, ReasonBadLeader)
	}
	// An epoch the chain keeps no record of: accepted unjudged.
	unrec := &Facts{}
	unrec.SetLeaderUnrecorded(2)
	if _, err := c.ApplyFacts(roundTrip(t, batch), nil, unrec); !errors.Is(err, ErrNeedFacts) {
		t.Fatalf("an unrecorded epoch: %v, want the entries' facts asked", err)
	}
}
