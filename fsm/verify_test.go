package fsm

import (
	"errors"
	"sync"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// TestApplyVerified verifies batches on other goroutines, several at once,
// then applies them in order with ApplyFacts: the result is the same as
// plain Apply.
func TestApplyVerified(t *testing.T) {
	cfg, batches := history(t)
	plain, pre := newMachine(t, cfg), newMachine(t, cfg)
	chain := &testChain{leaders: map[uint64]protocol.Address{1: testKey(t, 0).Address()}}
	vers := make([]*Verified, len(batches))
	var wg sync.WaitGroup
	for i, b := range batches {
		wg.Go(func() { vers[i] = Verify(b) })
	}
	wg.Wait()
	for i, b := range batches {
		want := mustApply(t, plain, b)
		got, err := chain.apply(pre, b, vers[i])
		if err != nil || got.Digest != want.Digest {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	requireSameState(t, plain, pre)
}

func TestVerify(t *testing.T) {
	alice, bob := testKey(t, 0), testKey(t, 1)
	m := newMachine(t, testConfig(alice, bob))
	forged := call(bob, 1, "put", "x=1")
	forged.Call.Tx.Args = []byte("x=2")
	b := honestBatch(m, []protocol.Entry{call(alice, 1, "put", "x=1"), tick(1, 5), forged}, 1, alice, 5)

	v := Verify(b)
	if v.leader != nil || v.calls[0] != nil || v.calls[1] != nil || !errors.Is(v.calls[2], protocol.ErrBadSignature) {
		t.Fatalf("verdicts %v %v", v.leader, v.calls)
	}
	wrongKey := roundTrip(t, b)
	wrongKey.PublicKey = bob.Public()
	if v := Verify(wrongKey); !errors.Is(v.leader, protocol.ErrKeyMismatch) {
		t.Fatalf("leader key of another address: %v", v.leader)
	}
	badSig := roundTrip(t, b)
	badSig.Signature[0] ^= 1
	if _, err := m.ApplyFacts(badSig, Verify(badSig), leaderFacts(1, alice.Address())); !errors.Is(err, ErrBatchSignature) {
		t.Fatalf("bad leader signature: %v", err)
	}
	noBody := roundTrip(t, b)
	noBody.Entries[1].Tick = nil
	if v := Verify(noBody); !errors.Is(v.leader, ErrBatchShape) {
		t.Fatalf("entry without body: %v", v.leader)
	}
	if v := Verify(nil); !errors.Is(v.leader, ErrBatchShape) {
		t.Fatal("nil batch")
	}
	if _, err := m.ApplyFacts(roundTrip(t, b), v, nil); !errors.Is(err, ErrBatchShape) {
		t.Fatal("a verification of another batch")
	}
	a, err := m.ApplyFacts(b, v, leaderFacts(1, alice.Address()))
	if err != nil || a.Outcomes[2].Result.Status != protocol.StatusBadSignature || a.Faults != 1 {
		t.Fatalf("apply: %v", err)
	}
}
