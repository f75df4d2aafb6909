package fsm

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/scraft/scraft/protocol"
)

func TestConfigValidate(t *testing.T) {
	a, b := testKey(t, 0), testKey(t, 1)
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"default test config", func(*Config) {}, true},
		{"zero channel", func(c *Config) { c.Channel = protocol.ChannelID{} }, false},
		{"bad contract", func(c *Config) { c.Contract = "a::b" }, false},
		{"empty contract", func(c *Config) { c.Contract = "" }, false},
		{"zero gas", func(c *Config) { c.GasLimit = 0 }, false},
		{"tolerance above interval", func(c *Config) { c.TickToleranceMs = 101 }, false},
		{"no ticks", func(c *Config) { c.TickIntervalMs, c.TickToleranceMs = 0, 0 }, true},
		{"zero evidence", func(c *Config) { c.MaxEvidence = 0 }, false},
		{"zero pending", func(c *Config) { c.MaxPending = 0 }, false},
		{"member key mismatch", func(c *Config) { c.Genesis.Members[0].PublicKey = b.Public() }, false},
		{"member twice", func(c *Config) { c.Genesis.Members[1] = c.Genesis.Members[0] }, false},
		{"join seq above highest", func(c *Config) { c.Genesis.HighestJoinSeq = 1 }, false},
		{"empty resource type", func(c *Config) { c.Genesis.State = protocol.State{{}: []byte("x")} }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(a, b)
			tc.mod(&cfg)
			err := cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v is not ErrConfig", err)
			}
		})
	}
	if _, err := New(testConfig(a), nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("New with nil executor: %v", err)
	}
}

// TestHappyPath drives a leader and two followers through calls of every
// kind, ticks, a join and a leave, and checks heights, statuses and that all
// three agree byte for byte.
func TestHappyPath(t *testing.T) {
	alice, bob, carol := testKey(t, 0), testKey(t, 1), testKey(t, 2)
	cfg := testConfig(alice, bob)
	leader, f1, f2 := newMachine(t, cfg), newMachine(t, cfg), newMachine(t, cfg)
	// The chain says alice led epoch 1.
	// The chain says alice led epoch 1 and gave join seq 3 to carol; bob
	// left through the chain.
	chain := &testChain{leaders: map[uint64]protocol.Address{1: alice.Address()}}
	if leader.LastDigest() != GenesisDigest(cfg.Channel, cfg.Contract, cfg.Genesis) || leader.Height() != 0 {
		t.Fatal("genesis digest or height")
	}

	steps := []struct {
		entries []protocol.Entry
		want    []protocol.Status
	}{
		{[]protocol.Entry{call(alice, 1, "put", "x=1"), call(bob, 1, "put", "x=2"), call(alice, 2, "put", "x=3")},
			[]protocol.Status{0, 0, 0}},
		{[]protocol.Entry{call(alice, 3, "abort", ""), call(bob, 2, "gas", "5000"), call(bob, 3, "emit", "hi"), call(alice, 4, "nope", "")},
			[]protocol.Status{protocol.StatusAbort, protocol.StatusOutOfGas, 0, protocol.StatusBadInput}},
		{[]protocol.Entry{tick(1, 1000), call(alice, 5, "del", "x"), call(alice, 6, "bad", ""), tick(2, 1095)},
			[]protocol.Status{0, 0, protocol.StatusTrap, 0}},
		{[]protocol.Entry{join(carol, 3), call(carol, 1, "put", "y=c"), leave(bob), call(bob, 4, "put", "x=late")},
			[]protocol.Status{0, 0, 0, protocol.StatusNotMember}},
	}
	height := uint64(0)
	for i, s := range steps {
		b, outs, err := chain.propose(leader, s.entries, 1, alice, uint64(1000*i))
		if err != nil {
			t.Fatalf("step %d: propose: %v", i, err)
		}
		if got := statuses(outs); !slices.Equal(got, s.want) {
			t.Fatalf("step %d: statuses %v, want %v", i, got, s.want)
		}
		for _, m := range []*Machine{f1, f2, leader} {
			a, err := chain.apply(m, roundTrip(t, b), nil)
			if err != nil {
				t.Fatalf("step %d: apply: %v", i, err)
			}
			if got := statuses(a.Outcomes); !slices.Equal(got, s.want) {
				t.Fatalf("step %d: applied statuses %v, want %v", i, got, s.want)
			}
			if a.Faults != 0 {
				t.Fatalf("step %d: %d faults", i, a.Faults)
			}
			if a.Reused != (m == leader) {
				t.Fatalf("step %d: reused=%v", i, a.Reused)
			}
		}
		height += uint64(len(s.entries))
		if leader.Height() != height {
			t.Fatalf("height %d, want %d", leader.Height(), height)
		}
		requireSameState(t, leader, f1)
		requireSameState(t, f1, f2)
	}

	// What the steps did.
	if n := leader.Nonce(alice.Address()); n != 6 {
		t.Fatalf("alice nonce %d", n)
	}
	if _, ok := leader.Member(bob.Address()); ok {
		t.Fatal("bob still a member")
	}
	if m, ok := leader.Member(carol.Address()); !ok || m.JoinSeq != 3 || leader.HighestJoinSeq() != 3 {
		t.Fatal("carol not joined with seq 3")
	}
	if v, ok := leader.Get(protocol.ResourceKey{Account: carol.Address(), Type: "t::Member"}); !ok || string(v) != string(addrBytes(carol.Address())) {
		t.Fatalf("on_join resource %x", v)
	}
	if _, ok := leader.Get(protocol.ResourceKey{Account: bob.Address(), Type: "t::Member"}); ok {
		t.Fatal("on_leave did not run")
	}
	if n, ts := leader.Tick(); n != 2 || ts != 1095 {
		t.Fatalf("tick %d at %d", n, ts)
	}
	if _, ok := leader.Get(protocol.ResourceKey{Account: alice.Address(), Type: "t::x"}); ok {
		t.Fatal("del did not delete")
	}
	if ev, total := f1.Evidence(); len(ev) != 0 || total != 0 {
		t.Fatalf("evidence on honest run: %v", ev)
	}
	st := leader.Stats()
	if st.BatchesReused != uint64(len(steps)) || st.BatchesApplied != uint64(len(steps)) || st.Entries != height {
		t.Fatalf("stats %+v", st)
	}
}

func addrBytes(a protocol.Address) []byte { return a[:] }

// TestExecutorMisbehaves: results an executor should never give become
// traps with no effect, the same on every member.
func TestExecutorMisbehaves(t *testing.T) {
	alice := testKey(t, 0)
	for _, fn := range []string{"bad", "spam", "dup"} {
		t.Run(fn, func(t *testing.T) {
			m := newMachine(t, testConfig(alice))
			before := m.Resources()
			a := mustApply(t, m, honestBatch(m, []protocol.Entry{call(alice, 1, fn, "")}, 1, alice, 1))
			o := a.Outcomes[0]
			if o.Result.Status != protocol.StatusTrap || o.ChangeSet.Len() != 0 || len(o.Events) != 0 || o.Result.GasUsed == 0 {
				t.Fatalf("outcome %+v", o)
			}
			if fmt.Sprint(before) != fmt.Sprint(m.Resources()) || m.Nonce(alice.Address()) != 1 {
				t.Fatal("a trapped call changed the state or did not use its nonce")
			}
		})
	}
}
