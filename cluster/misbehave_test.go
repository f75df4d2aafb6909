package cluster

import (
	"testing"

	"github.com/scraft/scraft/protocol"
)

// TestMisbehaviourKinds: the kinds a scraft_misbehave build takes beside
// the leader's lies: falsereport makes this node's own execution wrong at
// one height only, isolate (with or without its fault file) and noattest
// act in the transport and change nothing here.
func TestMisbehaviourKinds(t *testing.T) {
	for _, bad := range []string{"falsereport", "falsereport:0", "noattest:x", "equivocate", "equivocate:0"} {
		if _, err := parseMisbehaviour(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, spec := range []string{"isolate", "isolate:/tmp/faults", "noattest"} {
		mb, err := parseMisbehaviour(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if mb.tamper != nil || mb.censor != nil || mb.execute != nil {
			t.Errorf("%s: acts in the cluster", spec)
		}
	}
	mb, err := parseMisbehaviour("falsereport:3")
	if err != nil {
		t.Fatal(err)
	}
	misbehaving.Store(mb)
	t.Cleanup(func() { misbehaving.Store(nil) })
	x := misexecute(counterExec{})
	for h := uint64(1); h <= 4; h++ {
		call := protocol.Call{Function: "send", Args: []byte("a"), Height: h}
		got, want := x.Execute(call, protocol.State{}), counterExec{}.Execute(call, protocol.State{})
		if h == 3 {
			want.GasUsed++
		}
		if got.GasUsed != want.GasUsed {
			t.Errorf("height %d: gas %d, want %d", h, got.GasUsed, want.GasUsed)
		}
	}
	if !x.Has("send") {
		t.Error("the wrapped executor lost the contract's functions")
	}
	misbehaving.Store(nil)
	if _, wrapped := misexecute(counterExec{}).(wrongGas); wrapped {
		t.Error("an ordinary build's executor is wrapped")
	}
	eq, err := parseMisbehaviour("equivocate:3")
	if err != nil || eq.equivocate == nil || eq.tamper != nil {
		t.Fatalf("equivocate: %+v %v", eq, err)
	}
	k, _ := protocol.GenerateKey(nil)
	for first, want := range map[uint64]bool{1: false, 2: true, 3: true, 4: false} {
		b := &protocol.Batch{FirstHeight: first, Entries: make([]protocol.Entry, 2)}
		if got := eq.equivocate(k.Address(), b); got != want {
			t.Errorf("equivocate: batch from %d: %v, want %v", first, got, want)
		}
	}
	other, _ := protocol.GenerateKey(nil)
	if onlyLeader(k.Address(), eq).equivocate(other.Address(), &protocol.Batch{FirstHeight: 3, Entries: make([]protocol.Entry, 1)}) {
		t.Error("equivocate: acted on another leader's node")
	}
}
