package fsm

import (
	"errors"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// TestProposeReuse pipelines three batches, each executed on top of the
// ones before it, and checks that the leader applies them without running
// the contract again and ends where its followers do.
func TestProposeReuse(t *testing.T) {
	alice, bob := testKey(t, 0), testKey(t, 1)
	cfg := testConfig(alice, bob)
	exec := &fakeExec{}
	leader, err := New(cfg, exec)
	if err != nil {
		t.Fatal(err)
	}
	follower := newMachine(t, cfg)

	var batches []*protocol.Batch
	for i, entries := range [][]protocol.Entry{
		{call(alice, 1, "put", "x=1"), call(bob, 1, "put", "x=b")},
		{call(alice, 2, "put", "x=2"), tick(1, 1000)},
		{call(alice, 3, "del", "x"), call(alice, 4, "put", "x=3")},
	} {
		b, outs, err := leader.Propose(entries, 1, alice, 1000)
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, b)
		if n, next := leader.Pending(); n != i+1 || next != b.LastHeight()+1 {
			t.Fatalf("pending %d, next height %d", n, next)
		}
		if i == 1 {
			// The second batch saw the first: x went from 1 to 2.
			c := outs[0].ChangeSet.Changes[0]
			if c.Kind != protocol.OpModify || string(c.Old) != "1" || string(c.New) != "2" {
				t.Fatalf("second batch change %v", c)
			}
		}
	}
	if leader.Height() != 0 {
		t.Fatal("Propose changed the applied height")
	}
	calls := exec.calls
	for _, b := range batches {
		a := mustApply(t, leader, roundTrip(t, b))
		if !a.Reused || a.Faults != 0 {
			t.Fatalf("batch at %d: reused=%v faults=%d", b.FirstHeight, a.Reused, a.Faults)
		}
		f := mustApply(t, follower, roundTrip(t, b))
		if f.Reused || f.Digest != a.Digest {
			t.Fatal("follower digest differs")
		}
	}
	if exec.calls != calls {
		t.Fatalf("leader executed %d calls again", exec.calls-calls)
	}
	requireSameState(t, leader, follower)
	if n, _ := leader.Pending(); n != 0 {
		t.Fatalf("%d batches still pending", n)
	}
}

// TestProposeInvalidated has leadership change while batches are pending:
// the new leader's batch is applied, the pending ones are dropped, and the
// old leader ends where a plain follower does.
func TestProposeInvalidated(t *testing.T) {
	alice, bob := testKey(t, 0), testKey(t, 1)
	cfg := testConfig(alice, bob)

	tests := []struct {
		name     string
		reuseOne bool // the first pending batch commits before the change
	}{
		{"all pending dropped", false},
		{"second pending dropped", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old, follower := newMachine(t, cfg), newMachine(t, cfg)
			b1, _, err := old.Propose([]protocol.Entry{call(alice, 1, "put", "x=old1")}, 1, alice, 100)
			if err != nil {
				t.Fatal(err)
			}
			b2, _, err := old.Propose([]protocol.Entry{call(alice, 2, "put", "x=old2")}, 1, alice, 100)
			if err != nil {
				t.Fatal(err)
			}
			wantDropped := 2
			if tc.reuseOne {
				if a := mustApply(t, old, roundTrip(t, b1)); !a.Reused {
					t.Fatal("b1 not reused")
				}
				mustApply(t, follower, roundTrip(t, b1))
				wantDropped = 1
			}
			// Bob leads epoch 2 from the follower's state, which lacks the
			// pending batches.
			c := honestBatch(follower, []protocol.Entry{call(bob, 1, "put", "x=new"), call(alice, follower.Nonce(alice.Address())+1, "put", "y=1")}, 2, bob, 200)
			mustApply(t, follower, roundTrip(t, c))
			a := mustApply(t, old, roundTrip(t, c))
			if a.Reused || a.Dropped != wantDropped || a.Faults != 0 {
				t.Fatalf("reused=%v dropped=%d faults=%d", a.Reused, a.Dropped, a.Faults)
			}
			requireSameState(t, old, follower)
			if _, err := old.Apply(roundTrip(t, b2), nil); !errors.Is(err, ErrHeight) {
				t.Fatalf("stale pending batch: %v", err)
			}
			if _, _, err := old.Propose([]protocol.Entry{tick(1, 500)}, 1, alice, 500); !errors.Is(err, ErrStaleEpoch) {
				t.Fatalf("propose in an old epoch: %v", err)
			}
			if _, _, err := old.Propose([]protocol.Entry{tick(1, 500)}, 2, alice, 500); !errors.Is(err, ErrStaleEpoch) {
				t.Fatalf("propose as a second leader of epoch 2: %v", err)
			}
			b3, _, err := old.Propose([]protocol.Entry{tick(1, 500)}, 3, alice, 500)
			if err != nil {
				t.Fatal(err)
			}
			mustApply(t, follower, roundTrip(t, b3))
			if a := mustApply(t, old, roundTrip(t, b3)); !a.Reused {
				t.Fatal("b3 not reused")
			}
			requireSameState(t, old, follower)
		})
	}
}

// TestProposeCopiedSignature: a batch that carries the pending batch's
// signature over another body is not taken for it.
func TestProposeCopiedSignature(t *testing.T) {
	alice, bob := testKey(t, 0), testKey(t, 1)
	m := newMachine(t, testConfig(alice, bob))
	b, _, err := m.Propose([]protocol.Entry{call(alice, 1, "put", "x=1")}, 1, alice, 100)
	if err != nil {
		t.Fatal(err)
	}
	fake := roundTrip(t, b)
	fake.Entries[0] = call(bob, 1, "put", "x=2")
	if _, err := m.Apply(fake, nil); !errors.Is(err, ErrBatchSignature) {
		t.Fatalf("copied signature: %v", err)
	}
	if a := mustApply(t, m, roundTrip(t, b)); !a.Reused {
		t.Fatal("pending batch lost after a refused batch")
	}
}

func TestProposeLimits(t *testing.T) {
	alice := testKey(t, 0)
	cfg := testConfig(alice)
	cfg.MaxPending = 2
	m := newMachine(t, cfg)
	if _, _, err := m.Propose(nil, 1, alice, 0); !errors.Is(err, ErrBatchShape) {
		t.Fatalf("empty: %v", err)
	}
	b1, _, err := m.Propose([]protocol.Entry{call(alice, 1, "put", "a=1")}, 1, alice, 500)
	if err != nil {
		t.Fatal(err)
	}
	// A clock that goes backwards is clamped to the last batch's timestamp.
	b2, _, err := m.Propose([]protocol.Entry{call(alice, 2, "put", "a=2")}, 1, alice, 400)
	if err != nil || b2.TimestampMs != 500 {
		t.Fatalf("clamp: %v, ts %d", err, b2.TimestampMs)
	}
	if _, _, err := m.Propose([]protocol.Entry{call(alice, 3, "put", "a=3")}, 1, alice, 600); !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("over MaxPending: %v", err)
	}
	dropped := m.DropPending()
	if len(dropped) != 2 || dropped[0] != b1 || dropped[1] != b2 {
		t.Fatal("DropPending did not return the pending batches")
	}
	if n, next := m.Pending(); n != 0 || next != 1 {
		t.Fatalf("pending %d next %d", n, next)
	}
	var ee *EntryError
	if _, _, err := m.Propose([]protocol.Entry{{Kind: protocol.EntryCall}}, 1, alice, 600); !errors.As(err, &ee) {
		t.Fatalf("entry without body: %v", err)
	}
}

// TestProposeFacts: the leader's proposal takes the chain's verdicts as
// data. Without them it changes nothing and names the join and leave
// facts the entries need (not the leave of a member that asked in the same
// batch); a refused fact refuses its entry; with them it signs a batch its
// followers, given the same facts, apply alike.
func TestProposeFacts(t *testing.T) {
	alice, bob, carol, dave := testKey(t, 0), testKey(t, 1), testKey(t, 2), testKey(t, 3)
	cfg := testConfig(alice, bob, carol)
	leader, follower := newMachine(t, cfg), newMachine(t, cfg)
	entries := []protocol.Entry{request(carol, 1, protocol.RequestLeave), join(dave, 4), leave(carol), leave(bob)}

	facts := &Facts{}
	_, _, err := leader.ProposeFacts(entries, 2, alice, 100, facts)
	var need *NeedFactsError
	if !errors.As(err, &need) || !errors.Is(err, ErrNeedFacts) || need.Leader || need.Epoch != 2 ||
		len(need.Joins) != 1 || need.Joins[0].Member != dave.Address() ||
		len(need.Leaves) != 1 || need.Leaves[0].Address != bob.Address() || need.Leaves[0].JoinSeq != 2 {
		t.Fatalf("without facts: %v, want dave's join and bob's leave", err)
	}
	if n, next := leader.Pending(); n != 0 || next != 1 || leader.Stats().Evidence != 0 {
		t.Fatalf("a proposal missing facts changed the machine: %d pending, next height %d", n, next)
	}

	// The chain cannot tell about bob (yet): the leader does not sign it.
	facts.SetJoin(*entries[1].Join, nil)
	facts.SetLeave(memberOf(bob, 2), 2, errors.New("the chain has not ended it"))
	_, _, err = leader.ProposeFacts(entries, 2, alice, 100, facts)
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Index != 3 || ee.Reason != ReasonBadLeave {
		t.Fatalf("a refused leave fact: %v, want entry 3 refused for %s", err, ReasonBadLeave)
	}
	entries = entries[:3]
	b, outs, err := leader.ProposeFacts(entries, 2, alice, 100, facts)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		if o.Result.Status != protocol.StatusOK {
			t.Fatalf("entry %d: %s (%s)", i, o.Result.Status, o.Message)
		}
	}

	chain := &testChain{leaders: map[uint64]protocol.Address{2: alice.Address()}}
	for _, m := range []*Machine{leader, follower} {
		a, err := chain.apply(m, roundTrip(t, b), nil)
		if err != nil || a.Faults != 0 || a.Reused != (m == leader) {
			t.Fatalf("apply: %v, %+v", err, a)
		}
	}
	requireSameState(t, leader, follower)
	if _, ok := leader.Member(dave.Address()); !ok {
		t.Fatal("dave did not join")
	}

	// A join the chain refuses is left out, as the followers would refuse it.
	eve := testKey(t, 4)
	refused := &Facts{}
	refused.SetJoin(*join(eve, 5).Join, errors.New("join seq 5 is someone else's"))
	_, _, err = leader.ProposeFacts([]protocol.Entry{join(eve, 5)}, 2, alice, 200, refused)
	if !errors.As(err, &ee) || ee.Index != 0 || ee.Reason != ReasonBadJoin {
		t.Fatalf("a refused join fact: %v, want entry 0 refused for %s", err, ReasonBadJoin)
	}
}
