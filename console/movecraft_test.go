package console

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/vm"
)

// mcRun runs a demo contract's entry functions (MoveCraft's, mostly) on a
// state, through the vm.
type mcRun struct {
	t  testing.TB
	m  *vm.Module
	mc *contracts.Contract
	st protocol.State
	h  uint64
}

func newMCRun(t testing.TB) *mcRun { return newRun(t, "movecraft") }

// newRun deploys one of the demo contracts and runs its init.
func newRun(t testing.TB, name string) *mcRun {
	t.Helper()
	ctx := context.Background()
	e, err := vm.NewEngine(ctx, vm.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	mc, err := contracts.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.Deploy(ctx, mc.Wasm)
	if err != nil {
		t.Fatal(err)
	}
	r := &mcRun{t: t, m: m, mc: mc, st: protocol.State{}}
	r.call(protocol.Address{}, "init", "{}")
	return r
}

// call runs fn with JSON args as sender and applies its changes; it
// returns the outcome a subscriber would see.
func (r *mcRun) call(sender protocol.Address, fn, args string) *protocol.Outcome {
	r.t.Helper()
	var in []byte
	if fn != "init" {
		var err error
		if in, err = r.mc.EncodeArgs(fn, []byte(args)); err != nil {
			r.t.Fatal(err)
		}
	}
	r.h++
	res := r.m.Call(context.Background(), r.st, vm.Call{Function: fn, Args: in, Sender: sender, Height: r.h, Gas: 1 << 40})
	if res.Status != protocol.StatusOK {
		r.t.Fatalf("%s(%s): %s %s", fn, args, res.Status, res.Message)
	}
	if err := r.st.Apply(res.ChangeSet); err != nil {
		r.t.Fatal(err)
	}
	return &protocol.Outcome{Height: r.h, ChangeSet: res.ChangeSet, Events: res.Events, Output: res.Output}
}

func (r *mcRun) tick() *protocol.Outcome {
	r.t.Helper()
	r.h++
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], r.h)
	res := r.m.Call(context.Background(), r.st, vm.Call{Function: protocol.FuncOnTick, Args: n[:], Height: r.h, Gas: 1 << 40})
	if res.Status != protocol.StatusOK {
		r.t.Fatalf("on_tick: %s %s", res.Status, res.Message)
	}
	if err := r.st.Apply(res.ChangeSet); err != nil {
		r.t.Fatal(err)
	}
	return &protocol.Outcome{Height: r.h, ChangeSet: res.ChangeSet, Events: res.Events}
}

// TestTerrainMatchesContract: the console draws chunks nobody changed
// from its copy of the terrain function; it must be the contract's, voxel
// for voxel (sampled: every column of two chunks across, every z, and a
// stride over the rest).
func TestTerrainMatchesContract(t *testing.T) {
	r := newMCRun(t)
	n := 0
	for y := 0; y < mcSizeY; y++ {
		for x := 0; x < mcSizeX; x++ {
			if !(x < 32 && y < 16) && (x*7+y*13)%41 != 0 {
				continue
			}
			for z := 0; z < mcSizeZ; z++ {
				out := r.call(protocol.Address{}, "block_at", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, x, y, z)).Output
				if len(out) != 1 || out[0] != mcTerrain(x, y, z) {
					t.Fatalf("voxel %d,%d,%d: contract %v, console %d", x, y, z, out, mcTerrain(x, y, z))
				}
				n++
			}
		}
	}
	t.Logf("%d voxels compared", n)
}

// TestMoveCraftModel follows a player through join, move (ticks) and a
// placed block: the model's players, cells and block events match what
// the contract did, and its view rebuilt from the state equals the one
// kept up by the outcomes.
func TestMoveCraftModel(t *testing.T) {
	r := newMCRun(t)
	m := newModel(r.st, nil)
	if m.contract() != "movecraft" {
		t.Fatalf("model %q for a movecraft state", m.contract())
	}
	m.load(r.st.Clone())
	var alice protocol.Address
	alice[15] = 0xa1
	apply := func(o *protocol.Outcome) { m.apply(r.st, o) }
	apply(r.call(alice, "join", `{"name":"alice"}`))
	d, ok := m.delta().(WorldUpdate)
	if !ok || len(d.Players) != 1 || d.Players[0].Name != "alice" {
		t.Fatalf("after join: %+v", d)
	}
	start := d.Players[0]
	apply(r.call(alice, "move", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, start.X+3, start.Y, start.Z)))
	for range 3 {
		apply(r.tick())
	}
	d = m.delta().(WorldUpdate)
	if p := d.Players[0]; p.X != start.X+3 || p.Y != start.Y {
		t.Fatalf("after 3 ticks toward x+3: %+v, started at %+v", p, start)
	}
	// Place a block in the air above the player's column: the cell's top
	// becomes it.
	px, py, pz := start.X+3, start.Y+1, start.Z+1
	apply(r.call(alice, "place", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d,"item":6}`, px, py, pz)))
	d = m.delta().(WorldUpdate)
	found := false
	for _, c := range d.Cells {
		if c.X == px && c.Y == py {
			found = c.Block == 6 && c.Z == pz
		}
	}
	if !found || len(d.Blocks) != 1 || d.Blocks[0].Kind != "placed" || d.Blocks[0].Name != "alice" {
		t.Fatalf("after placing wood at %d,%d,%d: %+v", px, py, pz, d)
	}
	if m.delta() != nil {
		t.Fatal("a second delta with nothing new is not nil")
	}
	col := m.(*mcModel).columnAt(px, py)
	if col[pz] != 6 {
		t.Fatalf("column %d,%d: %v, want wood at z %d", px, py, col, pz)
	}
	// The view kept by outcomes is the view of the state.
	fresh := newModel(r.st, nil)
	fresh.load(r.st)
	a, b := m.view().(WorldView), fresh.view().(WorldView)
	if string(a.Top) != string(b.Top) || string(a.Z) != string(b.Z) || fmt.Sprint(a.Players) != fmt.Sprint(b.Players) {
		t.Fatal("the view kept by outcomes differs from the view of the state")
	}
}

// TestMoveCraftModelIgnoresForeignChunks: resources under the chunk type
// that the contract would never write (outside the land, wrong size) are
// not drawn and do not crash the view.
func TestMoveCraftModelIgnoresForeignChunks(t *testing.T) {
	r := newMCRun(t)
	m := newModel(r.st, nil).(*mcModel)
	m.load(r.st)
	before := m.view().(WorldView)
	var far protocol.Address
	copy(far[:], "mchk")
	binary.LittleEndian.PutUint32(far[4:], 99)
	var near protocol.Address
	copy(near[:], "mchk")
	cs, err := protocol.NewChangeSet([]protocol.Change{
		{Key: protocol.ResourceKey{Account: far, Type: mcChunkType}, Kind: protocol.OpNew, New: make([]byte, mcChunkBytes)},
		{Key: protocol.ResourceKey{Account: near, Type: mcChunkType}, Kind: protocol.OpNew, New: []byte{1, 2, 3}},
		{Key: protocol.ResourceKey{Account: near, Type: mcPosType}, Kind: protocol.OpNew, New: []byte{1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.apply(r.st, &protocol.Outcome{Height: 9, ChangeSet: cs})
	after := m.view().(WorldView)
	if string(before.Top) != string(after.Top) {
		t.Fatal("a foreign chunk changed the map")
	}
	if len(after.Players) != 0 {
		t.Fatalf("a malformed position made a player: %+v", after.Players)
	}
}
