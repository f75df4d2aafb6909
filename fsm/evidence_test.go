package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// TestLyingLeader gives one follower a batch whose leader lied and another
// the honest batch: the first records evidence, and both end in the same
// state, byte for byte.
func TestLyingLeader(t *testing.T) {
	alice, bob := testKey(t, 0), testKey(t, 1)
	cfg := testConfig(alice, bob)
	entries := []protocol.Entry{call(alice, 2, "put", "x=2"), call(bob, 1, "put", "y=1"), call(bob, 2, "emit", "e")}

	tests := []struct {
		name    string
		lie     func(b *protocol.Batch)
		reasons []Reason
		index   int // of the first evidence
	}{
		{"wrong status", func(b *protocol.Batch) { b.Results[1].Status = protocol.StatusAbort }, []Reason{ReasonResultMismatch, ReasonDigestMismatch}, 1},
		{"wrong change set hash", func(b *protocol.Batch) { b.Results[0].ChangeSet[0] ^= 1 }, []Reason{ReasonResultMismatch, ReasonDigestMismatch}, 0},
		{"wrong gas", func(b *protocol.Batch) { b.Results[2].GasUsed++ }, []Reason{ReasonResultMismatch, ReasonDigestMismatch}, 2},
		{"wrong events hash", func(b *protocol.Batch) { b.Results[2].Events = protocol.Hash{} }, []Reason{ReasonResultMismatch, ReasonDigestMismatch}, 2},
		{"wrong final digest", func(b *protocol.Batch) { b.Digest[5] ^= 1 }, []Reason{ReasonDigestMismatch}, -1},
		{"consistent lie", func(b *protocol.Batch) {
			b.Results[0].Status = protocol.StatusAbort
			// Re-chain the digest over the lie, as a careful liar would.
			b.Digest = rechain(t, cfg, b)
		}, []Reason{ReasonResultMismatch}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var notified []*Evidence
			cfgA := cfg
			cfgA.OnEvidence = func(ev *Evidence) { notified = append(notified, ev) }
			a, b := newMachine(t, cfgA), newMachine(t, cfg)
			first := honestBatch(a, []protocol.Entry{call(alice, 1, "put", "x=1")}, 1, alice, 10)
			mustApply(t, a, first)
			mustApply(t, b, first)

			honest := honestBatch(a, entries, 1, alice, 20)
			lying := roundTrip(t, honest)
			tc.lie(lying)
			lying.Sign(alice)

			got := mustApply(t, a, roundTrip(t, lying))
			want := mustApply(t, b, roundTrip(t, honest))
			requireSameState(t, a, b)
			if got.Digest != want.Digest || got.Faults != len(tc.reasons) || want.Faults != 0 {
				t.Fatalf("digests %s/%s, faults %d/%d", got.Digest, want.Digest, got.Faults, want.Faults)
			}
			evs, total := a.Evidence()
			if total != uint64(len(tc.reasons)) || len(notified) != len(tc.reasons) {
				t.Fatalf("%d evidence, %d notified, want %d", total, len(notified), len(tc.reasons))
			}
			for i, ev := range evs {
				if ev.Reason != tc.reasons[i] || ev.Leader != alice.Address() || ev.Epoch != 1 || notified[i] != ev {
					t.Fatalf("evidence %d: %v", i, ev)
				}
			}
			ev := evs[0]
			if ev.Index != tc.index {
				t.Fatalf("evidence index %d, want %d", ev.Index, tc.index)
			}
			if !bytes.Equal(ev.Batch, lying.Bytes()) {
				t.Fatal("evidence does not carry the signed batch")
			}
			if tc.index >= 0 {
				o := want.Outcomes[tc.index]
				if ev.Height != o.Height || ev.Claimed != lying.Results[tc.index] || ev.Honest != o.Result ||
					!ev.HonestChangeSet.Equal(o.ChangeSet) || ev.Entry.Call.Hash() != o.Hash {
					t.Fatalf("evidence fields: %+v", ev)
				}
			}
			// The punish payload round-trips and its batch verifies.
			p := ev.Punish()
			var back protocol.Punish
			if err := protocol.Unmarshal(protocol.Marshal(&p), &back); err != nil {
				t.Fatal(err)
			}
			pb, err := protocol.DecodeBatch(back.Batch)
			if err != nil || pb.VerifySignature() != nil || back.Target != alice.Address() {
				t.Fatalf("punish batch: %v", err)
			}
		})
	}
}

// rechain recomputes the digest of b over its (possibly false) results,
// starting from D(FirstHeight-1) of a machine that applied the first batch.
func rechain(t *testing.T, cfg Config, b *protocol.Batch) protocol.Hash {
	m := newMachine(t, cfg)
	mustApply(t, m, honestBatch(m, []protocol.Entry{call(testKey(t, 0), 1, "put", "x=1")}, 1, testKey(t, 0), 10))
	d := m.LastDigest()
	for i := range b.Entries {
		d = protocol.NextDigest(d, b.Entries[i].Hash(), &b.Results[i])
	}
	return d
}

// TestInvalidEntries checks each entry the rules refuse: the status it gets,
// that it changes nothing, whether it is evidence against the leader, and
// that Propose refuses exactly those that are.
func TestInvalidEntries(t *testing.T) {
	alice, bob, carol := testKey(t, 0), testKey(t, 1), testKey(t, 2)
	forged := call(alice, 1, "put", "x=1")
	forged.Call.Tx.Args = []byte("x=2")
	impostor := call(carol, 1, "put", "x=1")
	impostor.Call.Tx.Sender = alice.Address()
	otherChannel := protocol.SignTx(alice, protocol.Tx{Channel: protocol.ChannelID{1}, Nonce: 1, Function: "t::put", Args: []byte("x=1")})
	badKeyJoin := join(carol, 3)
	badKeyJoin.Join.PublicKey = bob.Public()

	tests := []struct {
		name    string
		cfg     func(*Config)
		entries []protocol.Entry
		index   int
		status  protocol.Status
		reason  Reason
		// nonceUsed: the call counts (its nonce is used) though it fails.
		nonceUsed bool
	}{
		{"forged signature", nil, []protocol.Entry{forged}, 0, protocol.StatusBadSignature, ReasonBadSignature, false},
		{"key of another sender", nil, []protocol.Entry{impostor}, 0, protocol.StatusBadSignature, ReasonBadSignature, false},
		{"replayed nonce", nil, []protocol.Entry{call(alice, 1, "put", "x=1"), call(alice, 1, "put", "x=1")}, 1, protocol.StatusBadNonce, 0, false},
		{"nonce gap", nil, []protocol.Entry{call(alice, 2, "put", "x=1")}, 0, protocol.StatusBadNonce, 0, false},
		{"non-member", nil, []protocol.Entry{call(carol, 1, "put", "x=1")}, 0, protocol.StatusNotMember, 0, false},
		{"other contract", nil, []protocol.Entry{txEntry(alice, 1, "u::put")}, 0, protocol.StatusBadInput, 0, true},
		{"reserved on_tick", nil, []protocol.Entry{txEntry(alice, 1, "t::on_tick")}, 0, protocol.StatusBadInput, 0, true},
		{"reserved init", nil, []protocol.Entry{txEntry(alice, 1, "t::init")}, 0, protocol.StatusBadInput, 0, true},
		{"other channel", nil, []protocol.Entry{{Kind: protocol.EntryCall, Call: otherChannel}}, 0, protocol.StatusBadInput, 0, false},
		{"tick skips a number", nil, []protocol.Entry{tick(2, 1000)}, 0, protocol.StatusRejected, ReasonBadTick, false},
		{"tick repeats a number", nil, []protocol.Entry{tick(1, 800), tick(1, 1000)}, 1, protocol.StatusRejected, ReasonBadTick, false},
		{"tick too early", nil, []protocol.Entry{tick(1, 900), tick(2, 989)}, 1, protocol.StatusRejected, ReasonBadTick, false},
		{"tick after the batch time", nil, []protocol.Entry{tick(1, 1001)}, 0, protocol.StatusRejected, ReasonBadTick, false},
		{"tick backwards", nil, []protocol.Entry{tick(1, 1000), tick(2, 900)}, 1, protocol.StatusRejected, ReasonBadTick, false},
		{"tick without ticks", func(c *Config) { c.TickIntervalMs, c.TickToleranceMs = 0, 0 }, []protocol.Entry{tick(1, 1000)}, 0, protocol.StatusRejected, ReasonBadTick, false},
		{"join of a member", nil, []protocol.Entry{join(bob, 3)}, 0, protocol.StatusRejected, ReasonBadJoin, false},
		{"join seq not higher", nil, []protocol.Entry{join(carol, 2)}, 0, protocol.StatusRejected, ReasonBadJoin, false},
		{"join key mismatch", nil, []protocol.Entry{badKeyJoin}, 0, protocol.StatusRejected, ReasonBadJoin, false},
		{"join twice", nil, []protocol.Entry{join(carol, 3), join(carol, 4)}, 1, protocol.StatusRejected, ReasonBadJoin, false},
		{"leave of a non-member", nil, []protocol.Entry{leave(carol)}, 0, protocol.StatusRejected, ReasonBadLeave, false},
		{"leave twice", nil, []protocol.Entry{leave(bob), leave(bob)}, 1, protocol.StatusRejected, ReasonBadLeave, false},
		{"tick within tolerance", nil, []protocol.Entry{tick(1, 900), tick(2, 990)}, 1, protocol.StatusOK, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(alice, bob)
			cfg.VerifyOnPropose = true
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			m := newMachine(t, cfg)
			// The same batch without the entry under test, for comparison.
			without := newMachine(t, cfg)
			rest := append(append([]protocol.Entry(nil), tc.entries[:tc.index]...), tc.entries[tc.index+1:]...)

			_, _, err := m.Propose(tc.entries, 1, alice, 1000)
			var ee *EntryError
			switch {
			case tc.reason == 0 && err != nil:
				t.Fatalf("Propose refused a valid batch: %v", err)
			case tc.reason != 0 && (!errors.As(err, &ee) || ee.Index != tc.index || ee.Reason != tc.reason):
				t.Fatalf("Propose: %v, want entry %d refused for %s", err, tc.index, tc.reason)
			}
			m.DropPending()

			a := mustApply(t, m, roundTrip(t, honestBatch(m, tc.entries, 1, alice, 1000)))
			o := a.Outcomes[tc.index]
			if o.Result.Status != tc.status {
				t.Fatalf("status %s (%s), want %s", o.Result.Status, o.Message, tc.status)
			}
			evs, _ := m.Evidence()
			if tc.reason == 0 {
				if len(evs) != 0 {
					t.Fatalf("unexpected evidence %v", evs[0])
				}
			} else if len(evs) != 1 || evs[0].Reason != tc.reason || evs[0].Index != tc.index || evs[0].Height != o.Height {
				t.Fatalf("evidence %v, want one %s at %d", evs, tc.reason, tc.index)
			}
			if tc.status != protocol.StatusOK {
				if o.ChangeSet.Len() != 0 || o.Result.ChangeSet != emptyChangeSetHash {
					t.Fatal("a refused entry changed state")
				}
				if len(rest) > 0 {
					mustApply(t, without, honestBatch(without, rest, 1, alice, 1000))
				}
				if tc.nonceUsed {
					if m.Nonce(alice.Address()) != 1 {
						t.Fatal("a call refused by the contract rules did not use its nonce")
					}
					delete(m.st.nonces, alice.Address())
				}
				if !sameContent(m, without) {
					t.Fatal("state differs from the batch without the refused entry")
				}
			}
		})
	}
}

func txEntry(k *protocol.Key, nonce uint64, fn string) protocol.Entry {
	tx := protocol.SignTx(k, protocol.Tx{Channel: testChannel, Nonce: nonce, Function: fn})
	return protocol.Entry{Kind: protocol.EntryCall, Call: tx}
}

// sameContent compares what entries can change: resources, nonces, members,
// ticks and join seq (not heights and digests).
func sameContent(a, b *Machine) bool {
	return fmt.Sprint(a.Resources()) == fmt.Sprint(b.Resources()) &&
		fmt.Sprint(a.st.nonces) == fmt.Sprint(b.st.nonces) &&
		fmt.Sprint(a.Members()) == fmt.Sprint(b.Members()) &&
		a.st.tick == b.st.tick && a.st.tickMs == b.st.tickMs && a.st.joinSeq == b.st.joinSeq
}

// TestBatchRefused checks the batch-level refusals: nothing changes, and
// evidence is recorded for those a verified signer is to blame for.
func TestBatchRefused(t *testing.T) {
	alice, bob := testKey(t, 0), testKey(t, 1)
	cfg := testConfig(alice, bob)
	tests := []struct {
		name     string
		batch    func(m *Machine) *protocol.Batch
		facts    *Facts
		err      error
		evidence Reason
	}{
		{"wrong channel", func(m *Machine) *protocol.Batch {
			b := honestBatch(m, []protocol.Entry{tick(2, 500)}, 2, alice, 500)
			b.Channel[0]++
			b.Sign(alice)
			return b
		}, nil, ErrWrongChannel, 0},
		{"height gap", func(m *Machine) *protocol.Batch {
			b := honestBatch(m, []protocol.Entry{tick(2, 500)}, 2, alice, 500)
			b.FirstHeight++
			b.Sign(alice)
			return b
		}, nil, ErrHeight, 0},
		{"already applied", func(m *Machine) *protocol.Batch {
			b := honestBatch(m, []protocol.Entry{tick(2, 500)}, 2, alice, 500)
			b.FirstHeight = 1
			b.Sign(alice)
			return b
		}, nil, ErrHeight, 0},
		{"no entries", func(m *Machine) *protocol.Batch {
			b := honestBatch(m, []protocol.Entry{tick(2, 500)}, 2, alice, 500)
			b.Entries, b.Results = nil, nil
			return b
		}, nil, ErrBatchShape, 0},
		{"results do not pair", func(m *Machine) *protocol.Batch {
			b := honestBatch(m, []protocol.Entry{tick(2, 500)}, 2, alice, 500)
			b.Results = append(b.Results, b.Results[0])
			return b
		}, nil, ErrBatchShape, 0},
		{"entry without body", func(m *Machine) *protocol.Batch {
			b := honestBatch(m, []protocol.Entry{tick(2, 500)}, 2, alice, 500)
			b.Entries[0].Tick = nil
			return b
		}, nil, ErrBatchShape, 0},
		{"bad leader signature", func(m *Machine) *protocol.Batch {
			b := honestBatch(m, []protocol.Entry{tick(2, 500)}, 2, alice, 500)
			b.Signature = bob.Sign(protocol.DomainBatch, b.Body())
			return b
		}, nil, ErrBatchSignature, 0},
		{"epoch backwards", func(m *Machine) *protocol.Batch {
			return honestBatch(m, []protocol.Entry{tick(2, 500)}, 1, alice, 500)
		}, nil, ErrNotLeader, ReasonBadLeader},
		{"second leader in an epoch", func(m *Machine) *protocol.Batch {
			return honestBatch(m, []protocol.Entry{tick(2, 500)}, 2, bob, 500)
		}, nil, ErrNotLeader, ReasonBadLeader},
		{"not the chain's leader", func(m *Machine) *protocol.Batch {
			return honestBatch(m, []protocol.Entry{tick(2, 500)}, 3, bob, 500)
		}, leaderFacts(3, alice.Address()), ErrNotLeader, ReasonBadLeader},
		{"timestamp backwards", func(m *Machine) *protocol.Batch {
			return honestBatch(m, []protocol.Entry{tick(2, 500)}, 2, alice, 99)
		}, nil, ErrTimestamp, ReasonBadTimestamp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t, cfg)
			mustApply(t, m, honestBatch(m, []protocol.Entry{tick(1, 100)}, 2, alice, 100))
			before := snapshotBytes(m)
			_, err := m.Apply(tc.batch(m), tc.facts)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Apply: %v, want %v", err, tc.err)
			}
			if !bytes.Equal(before, snapshotBytes(m)) {
				t.Fatal("a refused batch changed the state")
			}
			evs, _ := m.Evidence()
			switch {
			case tc.evidence == 0 && len(evs) != 0:
				t.Fatalf("unexpected evidence %v", evs[0])
			case tc.evidence != 0 && (len(evs) != 1 || evs[0].Reason != tc.evidence || evs[0].Index != -1):
				t.Fatalf("evidence %v, want %s", evs, tc.evidence)
			}
			if m.Stats().BatchesRefused != 1 {
				t.Fatal("refusal not counted")
			}
		})
	}
}

func TestEvidenceBounded(t *testing.T) {
	alice := testKey(t, 0)
	cfg := testConfig(alice)
	cfg.MaxEvidence = 3
	m := newMachine(t, cfg)
	for i := uint64(1); i <= 5; i++ {
		b := honestBatch(m, []protocol.Entry{leave(testKey(t, 9))}, 1, alice, i)
		mustApply(t, m, b)
	}
	evs, total := m.Evidence()
	if len(evs) != 3 || total != 5 || evs[0].Height != 3 || evs[2].Height != 5 {
		t.Fatalf("kept %d of %d, first at %d", len(evs), total, evs[0].Height)
	}
}

func leaderFacts(epoch uint64, leader protocol.Address) *Facts {
	f := &Facts{}
	f.SetLeader(epoch, leader)
	return f
}
