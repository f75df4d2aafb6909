package fsm

import (
	"errors"
	"fmt"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// chainHistory is a chain's history of memberships that ended, each with
// the epoch it ended in. It answers leave facts by the rule a node's chain
// reads follow (Facts.SetLeave) and records what it was asked.
type chainHistory struct {
	ended map[protocol.Address]departed
	asked []leaveAsked
}

type departed struct{ joinSeq, epoch uint64 }

type leaveAsked struct {
	member Member
	epoch  uint64
}

// chain is a testChain that asks h about leaves; alice led every epoch.
func (h *chainHistory) chain(alice *protocol.Key) *testChain {
	leaders := map[uint64]protocol.Address{}
	for e := uint64(1); e < 8; e++ {
		leaders[e] = alice.Address()
	}
	return &testChain{leaders: leaders, leave: h.checkLeave}
}

func (h *chainHistory) checkLeave(m Member, epoch uint64) error {
	h.asked = append(h.asked, leaveAsked{m, epoch})
	d, ok := h.ended[m.Address]
	switch {
	case !ok || d.joinSeq != m.JoinSeq:
		return fmt.Errorf("membership %d of %s has not ended on chain", m.JoinSeq, m.Address)
	case d.epoch > epoch:
		return fmt.Errorf("membership %d of %s ended in epoch %d, after epoch %d", m.JoinSeq, m.Address, d.epoch, epoch)
	}
	return nil
}

// TestLeaveEntry: a leave entry goes only for a member that asked to leave
// in the channel, or whose membership the chain ended by the batch's epoch.
// Any other is refused by Propose and, signed anyway, is evidence against
// the leader on every follower, which keeps the member.
func TestLeaveEntry(t *testing.T) {
	alice, bob, carol := testKey(t, 0), testKey(t, 1), testKey(t, 2)
	bobAddr := bob.Address()
	bobGone := func(seq, epoch uint64) map[protocol.Address]departed {
		return map[protocol.Address]departed{bob.Address(): {seq, epoch}}
	}
	tests := []struct {
		name string
		// before runs ahead of the leave, in the same batch.
		before  []protocol.Entry
		ended   map[protocol.Address]departed
		noCheck bool // a machine without a chain (Propose, Apply)
		leaver  *protocol.Key
		epoch   uint64
		// ok says the leave goes; asked, that the chain was consulted.
		ok, asked bool
	}{
		{name: "asked with scraft::leave", before: []protocol.Entry{request(bob, 2, protocol.RequestLeave)}, leaver: bob, epoch: 1, ok: true},
		{name: "asked by a contract's scraft::Leave", before: []protocol.Entry{call(alice, 1, "raise", protocol.EventLeave+"="+string(bobAddr[:]))},
			leaver: bob, epoch: 1, ok: true},
		{name: "asked, still a member on chain", before: []protocol.Entry{request(bob, 2, protocol.RequestLeave)}, ended: map[protocol.Address]departed{}, leaver: bob, epoch: 1, ok: true},
		{name: "gone on chain in the batch's epoch", ended: bobGone(2, 2), leaver: bob, epoch: 2, ok: true, asked: true},
		{name: "gone on chain in an earlier epoch", ended: bobGone(2, 1), leaver: bob, epoch: 3, ok: true, asked: true},
		{name: "gone on chain after the batch's epoch", ended: bobGone(2, 3), leaver: bob, epoch: 2, asked: true},
		{name: "an earlier membership gone, not this one", ended: bobGone(1, 1), leaver: bob, epoch: 2, asked: true},
		{name: "neither asked nor gone", ended: map[protocol.Address]departed{}, leaver: bob, epoch: 1, asked: true},
		{name: "another member asked", before: []protocol.Entry{request(alice, 1, protocol.RequestLeave)}, ended: map[protocol.Address]departed{}, leaver: bob, epoch: 1, asked: true},
		{name: "not a member", ended: map[protocol.Address]departed{carol.Address(): {3, 1}}, leaver: carol, epoch: 1},
		{name: "no chain: any member", noCheck: true, leaver: bob, epoch: 1, ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hist := &chainHistory{ended: tc.ended}
			cfg := testConfig(alice, bob)
			propose, apply := hist.chain(alice).propose, hist.chain(alice).apply
			if tc.noCheck {
				propose = func(m *Machine, entries []protocol.Entry, epoch uint64, key *protocol.Key, ts uint64) (*protocol.Batch, []protocol.Outcome, error) {
					return m.Propose(entries, epoch, key, ts)
				}
				apply = func(m *Machine, b *protocol.Batch, _ *Verified) (*Applied, error) { return m.Apply(b, nil) }
			}
			leader, follower := newMachine(t, cfg), newMachine(t, cfg)
			// on_leave deletes (member, t::Member): give bob one to lose.
			setup := []protocol.Entry{join(carol, 3), call(bob, 1, "put", "Member=bob")}
			if tc.leaver == carol {
				setup = setup[1:]
			}
			sb := honestBatch(leader, setup, 1, alice, 100)
			for _, m := range []*Machine{leader, follower} {
				mustApply(t, m, roundTrip(t, sb))
			}
			hist.asked = nil // the setup's join is not a leave: nothing asked
			entries := append(append([]protocol.Entry(nil), tc.before...), leave(tc.leaver))
			idx := len(entries) - 1

			b, _, err := propose(leader, entries, tc.epoch, alice, 1000)
			var ee *EntryError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("Propose refused: %v", err)
			case !tc.ok && (!errors.As(err, &ee) || ee.Index != idx || ee.Reason != ReasonBadLeave):
				t.Fatalf("Propose: %v, want entry %d refused for %s", err, idx, ReasonBadLeave)
			}
			if asked := len(hist.asked) > 0; asked != tc.asked {
				t.Fatalf("chain consulted %v, want %v", asked, tc.asked)
			}
			for _, a := range hist.asked {
				if a.epoch != tc.epoch || a.member.Address != tc.leaver.Address() || a.member.JoinSeq == 0 {
					t.Fatalf("asked about %+v", a)
				}
			}
			if !tc.ok {
				// A leader that signs it anyway.
				leader.DropPending()
				b = honestBatch(follower, entries, tc.epoch, alice, 1000)
			}
			a, err := apply(follower, roundTrip(t, b), nil)
			if err != nil {
				t.Fatal(err)
			}
			o := a.Outcomes[idx]
			_, member := follower.Member(tc.leaver.Address())
			_, hasRes := follower.Get(protocol.ResourceKey{Account: tc.leaver.Address(), Type: "t::Member"})
			evs, _ := follower.Evidence()
			if tc.ok {
				if o.Result.Status != protocol.StatusOK || member || hasRes || a.Faults != 0 {
					t.Fatalf("accepted leave: status %s (%s), still member %v, resource kept %v, %d faults",
						o.Result.Status, o.Message, member, hasRes, a.Faults)
				}
				return
			}
			if o.Result.Status != protocol.StatusRejected || o.Result.ChangeSet != emptyChangeSetHash {
				t.Fatalf("refused leave: status %s, change set %s", o.Result.Status, o.Result.ChangeSet)
			}
			if tc.leaver != carol && (!member || hasRes != (tc.leaver == bob)) {
				t.Fatalf("a refused leave changed the member: member %v, resource %v", member, hasRes)
			}
			if len(evs) != 1 || evs[0].Reason != ReasonBadLeave || evs[0].Index != idx || evs[0].Leader != alice.Address() {
				t.Fatalf("evidence %v, want one %s against the leader at entry %d", evs, ReasonBadLeave, idx)
			}
		})
	}
}

// TestLeaveVerdictStable: the verdict on a leave does not depend on when it
// is asked. A leave refused in epoch 1 stays refused for a member that
// replays the log after the chain let the member go in epoch 2, so both end
// with the same digest; the leader of epoch 2 may then order it.
func TestLeaveVerdictStable(t *testing.T) {
	alice, bob := testKey(t, 0), testKey(t, 1)
	hist := &chainHistory{ended: map[protocol.Address]departed{}}
	chain := hist.chain(alice)
	cfg := testConfig(alice, bob)
	early := newMachine(t, cfg)
	mustApply := func(t *testing.T, m *Machine, b *protocol.Batch) *Applied {
		t.Helper()
		a, err := chain.apply(m, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	evict := honestBatch(early, []protocol.Entry{leave(bob)}, 1, alice, 100)
	if a := mustApply(t, early, roundTrip(t, evict)); a.Faults != 1 {
		t.Fatalf("eviction in epoch 1: %d faults, want 1", a.Faults)
	}

	// The chain lets bob go in epoch 2; a member that applies the same
	// log now judges the epoch-1 eviction the same way.
	hist.ended[bob.Address()] = departed{joinSeq: 2, epoch: 2}
	late := newMachine(t, cfg)
	if a := mustApply(t, late, roundTrip(t, evict)); a.Faults != 1 || a.Outcomes[0].Result.Status != protocol.StatusRejected {
		t.Fatalf("replayed eviction: %d faults, status %s", a.Faults, a.Outcomes[0].Result.Status)
	}
	requireSameState(t, early, late)

	b, _, err := chain.propose(early, []protocol.Entry{leave(bob)}, 2, alice, 200)
	if err != nil {
		t.Fatalf("leave in epoch 2: %v", err)
	}
	for _, m := range []*Machine{early, late} {
		if a := mustApply(t, m, roundTrip(t, b)); a.Faults != 0 {
			t.Fatalf("leave in epoch 2: %d faults", a.Faults)
		}
		if _, ok := m.Member(bob.Address()); ok {
			t.Fatal("bob is still a member")
		}
	}
	requireSameState(t, early, late)
}
