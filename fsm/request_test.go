package fsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// TestLeaveRequest checks that a member's signed scraft::leave, and a
// contract's scraft::Leave event, record the height at which the member
// asked, on every member alike, and that its leave entry still takes it out.
func TestLeaveRequest(t *testing.T) {
	alice, bob, carol := testKey(t, 0), testKey(t, 1), testKey(t, 2)
	cfg := testConfig(alice, bob, carol)
	leader, follower := newMachine(t, cfg), newMachine(t, cfg)
	apply := func(entries ...protocol.Entry) []protocol.Outcome {
		t.Helper()
		b, _, err := leader.Propose(entries, 1, alice, 1000)
		if err != nil {
			t.Fatal(err)
		}
		a := mustApply(t, leader, roundTrip(t, b))
		f := mustApply(t, follower, roundTrip(t, b))
		if f.Faults != 0 || f.Digest != a.Digest {
			t.Fatalf("follower: %d faults, digest %s vs %s", f.Faults, f.Digest, a.Digest)
		}
		return a.Outcomes
	}
	outs := apply(
		request(bob, 1, protocol.RequestLeave),
		request(bob, 2, protocol.RequestLeave), // asked already: keeps the first height
		call(carol, 1, "raise", protocol.EventLeave+"="+string(addrBytes(alice.Address()))),
	)
	for i, o := range outs {
		if o.Result.Status != protocol.StatusOK {
			t.Fatalf("entry %d: %s %s", i, o.Result.Status, o.Message)
		}
	}
	if ev := outs[0].Events; len(ev) != 1 || ev[0].Type != protocol.EventLeave || !bytes.Equal(ev[0].Data, addrBytes(bob.Address())) {
		t.Fatalf("request events %v", ev)
	}
	if outs[0].Result.Events != protocol.EventsHash(outs[0].Events) {
		t.Fatal("the result does not commit to the request's event")
	}
	want := map[protocol.Address]uint64{alice.Address(): 3, bob.Address(): 1, carol.Address(): 0}
	for _, m := range []*Machine{leader, follower} {
		for a, h := range want {
			mem, ok := m.Member(a)
			if !ok || mem.LeaveHeight != h {
				t.Fatalf("member %s: present %v, leave height %d, want %d", a, ok, mem.LeaveHeight, h)
			}
		}
		if m.Nonce(bob.Address()) != 2 {
			t.Fatalf("bob's nonce %d, want 2: a request uses its nonce", m.Nonce(bob.Address()))
		}
	}
	requireSameState(t, leader, follower)

	// Refused requests: args, an unknown function, a non-member.
	dave := testKey(t, 3)
	withArgs := protocol.SignTx(carol, protocol.Tx{Channel: testChannel, Nonce: 2, Function: protocol.RequestLeave, Args: []byte("x")})
	outs = apply(
		protocol.Entry{Kind: protocol.EntryCall, Call: withArgs},
		request(carol, 3, "scraft::pause"),
		request(dave, 1, protocol.RequestLeave),
	)
	got := statuses(outs)
	wantSt := []protocol.Status{protocol.StatusBadInput, protocol.StatusBadInput, protocol.StatusNotMember}
	for i := range wantSt {
		if got[i] != wantSt[i] {
			t.Fatalf("statuses %v, want %v", got, wantSt)
		}
	}
	if mem, _ := leader.Member(carol.Address()); mem.LeaveHeight != 0 {
		t.Fatal("a refused request recorded a leave")
	}

	// The leave entry takes bob out; his later calls are not a member's.
	outs = apply(leave(bob), call(bob, 3, "put", "x=1"))
	if outs[0].Result.Status != protocol.StatusOK || outs[1].Result.Status != protocol.StatusNotMember {
		t.Fatalf("leave then call: %v", statuses(outs))
	}
	if _, ok := follower.Member(bob.Address()); ok {
		t.Fatal("bob is still a member after his leave entry")
	}
}

// TestCloseRequest checks that after a close request the state is final:
// Propose refuses calls, joins and ticks (a leader that signs one anyway is
// caught), leave entries still go, and a snapshot keeps the closing height
// and the leave heights.
func TestCloseRequest(t *testing.T) {
	alice, bob, carol := testKey(t, 0), testKey(t, 1), testKey(t, 2)
	cfg := testConfig(alice, bob)
	leader, follower := newMachine(t, cfg), newMachine(t, cfg)
	b, outs, err := leader.Propose([]protocol.Entry{
		call(alice, 1, "put", "x=1"), request(bob, 1, protocol.RequestLeave), request(alice, 2, protocol.RequestClose),
	}, 1, alice, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if ev := outs[2].Events; len(ev) != 1 || ev[0].Type != protocol.EventClose {
		t.Fatalf("close request events %v", ev)
	}
	mustApply(t, leader, roundTrip(t, b))
	mustApply(t, follower, roundTrip(t, b))
	if leader.Closing() != 3 || follower.Closing() != 3 {
		t.Fatalf("closing at %d and %d, want 3", leader.Closing(), follower.Closing())
	}

	for _, tc := range []struct {
		name   string
		entry  protocol.Entry
		reason Reason
	}{
		{"call", call(alice, 3, "put", "x=2"), ReasonClosing},
		{"request", request(bob, 2, protocol.RequestClose), ReasonClosing},
		{"tick", tick(1, 1000), ReasonBadTick},
		{"join", join(carol, 3), ReasonBadJoin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := leader.Propose([]protocol.Entry{tc.entry}, 1, alice, 1000)
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Reason != tc.reason {
				t.Fatalf("Propose: %v, want an entry error for %s", err, tc.reason)
			}
		})
	}
	// A leader that orders a call anyway leaves evidence on its followers,
	// which apply their own result: the call changes nothing.
	bad := honestBatch(leader, []protocol.Entry{call(alice, 3, "put", "x=2")}, 1, alice, 1000)
	a := mustApply(t, follower, roundTrip(t, bad))
	if a.Faults != 1 || a.Outcomes[0].Result.Status != protocol.StatusRejected {
		t.Fatalf("call after close: %d faults, status %s", a.Faults, a.Outcomes[0].Result.Status)
	}
	if evs, _ := follower.Evidence(); len(evs) != 1 || evs[0].Reason != ReasonClosing {
		t.Fatalf("evidence %v", evs)
	}
	mustApply(t, leader, roundTrip(t, bad))
	// Leave entries still go: members leave a closing channel.
	b, _, err = leader.Propose([]protocol.Entry{leave(bob)}, 1, alice, 1000)
	if err != nil {
		t.Fatalf("leave after close: %v", err)
	}
	mustApply(t, leader, roundTrip(t, b))
	mustApply(t, follower, roundTrip(t, b))
	requireSameState(t, leader, follower)

	// A snapshot carries the closing height and the leave heights.
	restored := newMachine(t, cfg)
	if err := restored.Restore(bytes.NewReader(snapshotBytes(leader))); err != nil {
		t.Fatal(err)
	}
	requireSameState(t, leader, restored)
	if restored.Closing() != 3 {
		t.Fatalf("restored closing height %d", restored.Closing())
	}
	m2 := newMachine(t, testConfig(alice, bob))
	b, _, err = m2.Propose([]protocol.Entry{request(bob, 1, protocol.RequestLeave)}, 1, alice, 1000)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, m2, roundTrip(t, b))
	r2 := newMachine(t, testConfig(alice, bob))
	if err := r2.Restore(bytes.NewReader(snapshotBytes(m2))); err != nil {
		t.Fatal(err)
	}
	if mem, _ := r2.Member(bob.Address()); mem.LeaveHeight != 1 {
		t.Fatalf("restored leave height %d, want 1", mem.LeaveHeight)
	}
}
