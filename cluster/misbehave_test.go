package cluster

import (
	"testing"

	"github.com/scraft/scraft/protocol"
)

// TestMisbehaviourKinds: the kinds a scraft_misbehave build takes beside
// the leader's lies: falsereport makes this node's own execution wrong at
// one height only, isolate and noattest act in the transport and change
// nothing here.
func TestMisbehaviourKinds(t *testing.T) {
	for _, bad := range []string{"falsereport", "falsereport:0", "isolate:3", "noattest:x"} {
		if _, err := parseMisbehaviour(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, spec := range []string{"isolate", "noattest"} {
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
}
