package console

import (
	"testing"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
)

// FuzzViews feeds the views resources no contract of ours would write:
// any account, any of the types they decode, any bytes. Nothing may
// panic, and the map keeps its size. One world takes every input in turn,
// as a channel view takes outcome after outcome.
func FuzzViews(f *testing.F) {
	chunk := make([]byte, mcChunkBytes)
	chunk[0], chunk[1] = 0x80, 0x20
	var acct [16]byte
	copy(acct[:], "mchk")
	f.Add(acct[:], mcChunkType, chunk, false)
	f.Add(acct[:], mcChunkType, chunk, true)
	f.Add(acct[:], mcPosType, []byte{1, 0, 2, 0, 3, 0}, false)
	f.Add(acct[:], mcPlayerType, []byte{3, 'b', 'o', 'b', 0}, false)
	f.Add(acct[:], "chat::Message", []byte{1, 2, 3}, false)
	f.Add(acct[:], "editor::Element", []byte{}, true)
	mc, err := contracts.Get("movecraft")
	if err != nil {
		f.Fatal(err)
	}
	world := newMCModel(mc)
	world.load(protocol.State{})
	f.Fuzz(func(t *testing.T, account []byte, typ string, value []byte, del bool) {
		var a protocol.Address
		copy(a[:], account)
		k := protocol.ResourceKey{Account: a, Type: typ}
		world.set(k, value, !del)
		world.delta()
		if w := world.view().(WorldView); len(w.Top) != mcSizeX*mcSizeY || len(w.Z) != mcSizeX*mcSizeY {
			t.Fatalf("map of %d cells", len(w.Top))
		}
		st := protocol.State{k: value}
		m := newModel(st, nil)
		m.load(st)
		m.view()
	})
}
