package contracts

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
)

type mcPlayer struct {
	Name      string
	Pos       struct{ X, Y, Z int }
	Inventory []struct{ Item, Count int }
}

func (p mcPlayer) count(item int) int {
	for _, s := range p.Inventory {
		if s.Item == item {
			return s.Count
		}
	}
	return 0
}

func mcGetPlayer(t testing.TB, h *testHost, a [16]byte) mcPlayer {
	t.Helper()
	var p mcPlayer
	j := h.resource(a, "movecraft::Player")
	if j == "" {
		t.Fatal("no player")
	}
	if err := json.Unmarshal([]byte(j), &p); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(h.resource(a, "movecraft::Position")), &p.Pos); err != nil {
		t.Fatal(err)
	}
	return p
}

func mcBlock(t testing.TB, h *testHost, x, y, z int) string {
	t.Helper()
	out := h.mustCall(addr(0), "block_at", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, x, y, z))
	j, err := h.abi.DecodeOutput("block_at", out)
	if err != nil {
		t.Fatal(err)
	}
	return string(j)
}

func xyz(x, y, z int) string { return fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, x, y, z) }

func place(x, y, z, item int) string {
	return fmt.Sprintf(`{"x":%d,"y":%d,"z":%d,"item":%d}`, x, y, z, item)
}

func TestMovecraftRun(t *testing.T) {
	h := newTestHost(t, "movecraft")
	alice := addr(0xa1)
	h.mustAbort(alice, "join", `{"name":"alice"}`, 100)
	h.mustCall(alice, "init", `{}`)
	h.mustCall(alice, "join", `{"name":"alice"}`)
	h.mustAbort(alice, "join", `{"name":"alice"}`, 101)
	p := mcGetPlayer(t, h, alice)
	x, y, z := p.Pos.X, p.Pos.Y, p.Pos.Z
	if x != 64 || y != 64 || mcBlock(t, h, x, y, z) != "0" || mcBlock(t, h, x, y, z-1) == "0" {
		t.Fatalf("spawned at %d,%d,%d", x, y, z)
	}
	if p.count(3) != 16 || p.count(5) != 8 || p.count(20) != 8 {
		t.Fatalf("starter inventory %+v", p.Inventory)
	}
	// Reading generates terrain without storing it.
	if h.count("movecraft::Chunk") != 0 {
		t.Fatal("untouched chunk stored")
	}

	// Breaking a block stores exactly its chunk.
	h.mustCall(alice, "break_block", xyz(x+1, y, z-1))
	h.mustCall(alice, "place", place(x+1, y, z-1, 3)) // dirt under the crop to come
	if n := h.count("movecraft::Chunk"); n != 1 {
		t.Fatalf("%d chunks stored, want 1", n)
	}
	for k, v := range h.store {
		if strings.HasSuffix(k, "movecraft::Chunk") && (len(v) != 4098 || k[:4] != "mchk") {
			t.Fatalf("chunk %x: %d bytes", k[:16], len(v))
		}
	}

	// Sand placed in the air falls one voxel per tick, then rests.
	h.mustCall(alice, "place", place(x+2, y, z+3, 5))
	for i := 0; i < 3; i++ {
		h.mustCall(addr(0), "on_tick", "")
	}
	if got := mcBlock(t, h, x+2, y, z); got != "5" || mcBlock(t, h, x+2, y, z+3) != "0" {
		t.Fatalf("sand at z=%d: %s", z, got)
	}
	h.mustCall(addr(0), "on_tick", "")
	if got := h.resource(channelAccount, "movecraft::Schedule"); got != `{"crops":[],"falling":[],"moving":[]}` {
		t.Fatalf("schedule = %s", got)
	}
	// An idle tick writes nothing.
	h.mustCall(addr(0), "on_tick", "")
	if len(h.cur.writes) != 0 {
		t.Fatalf("idle tick wrote %d resources", len(h.cur.writes))
	}

	// Seeds grow a stage every 10 ticks and are ripe after 30.
	h.mustCall(alice, "place", place(x+1, y, z, 20))
	for i := 0; i < 30; i++ {
		h.mustCall(addr(0), "on_tick", "")
	}
	if got := mcBlock(t, h, x+1, y, z); got != "11" {
		t.Fatalf("crop stage %s after 30 ticks, want 11", got)
	}
	h.mustCall(alice, "break_block", xyz(x+1, y, z))
	p = mcGetPlayer(t, h, alice)
	if p.count(21) != 1 || p.count(20) != 9 {
		t.Fatalf("harvest: %+v", p.Inventory)
	}

	// Moving: one voxel per axis per tick.
	h.mustCall(alice, "move", xyz(x+3, y-2, z+5))
	for i := 0; i < 5; i++ {
		h.mustCall(addr(0), "on_tick", "")
	}
	if p = mcGetPlayer(t, h, alice); p.Pos.X != x+3 || p.Pos.Y != y-2 || p.Pos.Z != z+5 {
		t.Fatalf("moved to %+v", p.Pos)
	}

	// A wall in the way is climbed.
	p = mcGetPlayer(t, h, alice)
	wx, wy, wz := p.Pos.X, p.Pos.Y, p.Pos.Z
	h.mustCall(alice, "place", place(wx+1, wy, wz, 6))
	h.mustCall(alice, "place", place(wx+1, wy, wz+1, 6))
	h.mustCall(alice, "move", xyz(wx+2, wy, wz))
	for i := 0; i < 8; i++ {
		h.mustCall(addr(0), "on_tick", "")
	}
	if p = mcGetPlayer(t, h, alice); p.Pos.X != wx+2 || p.Pos.Y != wy || p.Pos.Z != wz {
		t.Fatalf("stuck at %+v behind the wall", p.Pos)
	}
	if got := h.resource(channelAccount, "movecraft::Schedule"); !strings.HasSuffix(got, `"moving":[]}`) {
		t.Fatalf("schedule = %s", got)
	}

	// Bad input gets a clear abort.
	for _, tc := range []struct {
		fn, args string
		code     uint32
	}{
		{"place", place(x+5, y-2, z+5+6, 3), 104},       // out of reach
		{"place", place(x, y, 40, 3), 103},              // above the land
		{"place", place(x+3, y-2, z+4, 2), 106},         // no stone in the inventory
		{"place", place(x+3, y-2, z+4, 1), 107},         // bedrock is not placeable
		{"place", place(x+2, y, z, 3), 105},             // the sand is there
		{"break_block", xyz(x+3, y-2, z+4), 108},        // air
		{"move", xyz(128, 0, 0), 103},                   // outside
		{"block_at", `{"x":1,"y":1,"z":1000}`, 103},     // outside
		{"get_chunk", `{"cx":8,"cy":0,"cz":0}`, 103},    // no such chunk
		{"place", `{"x":1,"y":1,"z":1,"item":1000}`, 0}, // caught by EncodeArgs
	} {
		if tc.code == 0 {
			if _, err := h.abi.EncodeArgs(tc.fn, []byte(tc.args)); err == nil {
				t.Fatalf("%s %s encoded", tc.fn, tc.args)
			}
			continue
		}
		h.mustAbort(alice, tc.fn, tc.args, tc.code)
	}
	if ab := h.call(alice, "place", []byte{1, 2, 3}); ab == nil || ab.code != 1 {
		t.Fatalf("short input: %v", ab)
	}
	bob := addr(0xb0)
	h.mustAbort(bob, "move", xyz(1, 1, 1), 102)

	out := h.mustCall(alice, "get_chunk", `{"cx":4,"cy":4,"cz":0}`)
	if j, err := h.abi.DecodeOutput("get_chunk", out); err != nil || len(j) != 2+2+2*4096 {
		t.Fatalf("chunk output %d bytes, %v", len(j), err)
	}

	h.mustCall(bob, "on_join", "")
	h.mustCall(alice, "leave", "")
	if last := h.cur.events[len(h.cur.events)-1]; last.Type != "scraft::Leave" {
		t.Fatalf("last event %s", last.Type)
	}
	h.mustCall(bob, "on_leave", "")
	if got := h.resource(channelAccount, "movecraft::Land"); got != `{"size_x":128,"size_y":128,"size_z":32,"players":0}` {
		t.Fatalf("land = %s", got)
	}
}

// mcCrowd joins n players and sends each walking across the sky.
func mcCrowd(b testing.TB, n int) *testHost {
	h := newTestHost(b, "movecraft")
	h.mustCall(addr(0), "init", "")
	for i := 0; i < n; i++ {
		a := addr(byte(i + 1))
		a[0] = byte(i >> 8)
		h.mustCall(a, "join", fmt.Sprintf(`{"name":"p%d"}`, i))
		h.mustCall(a, "move", xyz(i%2*127, i%128, 31))
	}
	return h
}

func BenchmarkMovecraftTick(b *testing.B) {
	for _, players := range []int{0, 100, 500, 768} {
		b.Run(fmt.Sprintf("moving=%d", players), func(b *testing.B) {
			h := mcCrowd(b, players)
			start := maps.Clone(h.store)
			h.callTime = 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%50 == 49 { // keep them walking
					b.StopTimer()
					h.store = maps.Clone(start)
					b.StartTimer()
				}
				if ab := h.call(addr(0), "on_tick", nil); ab != nil {
					b.Fatal(ab)
				}
			}
			// call-ns/op leaves out the fresh instance the stub host makes
			// per call (package vm reuses instances).
			b.ReportMetric(float64(h.callTime.Nanoseconds())/float64(b.N), "call-ns/op")
			b.ReportMetric(float64(h.memPages), "pages")
		})
	}
}

// TestMovecraftFullWorld fills a world to its cap of 768 players: each
// spawns on its own column, standing in air on the surface; one more is
// refused (109, full); then every player walks to a target across the land
// at once, and the ticks bring each one there and empty the schedule.
func TestMovecraftFullWorld(t *testing.T) {
	const players = 768
	h := newTestHost(t, "movecraft")
	h.mustCall(addr(0), "init", "")
	who := func(i int) [16]byte {
		a := addr(byte(i))
		a[0] = byte(i>>8) + 1
		return a
	}
	columns := map[[2]int]bool{}
	for i := 0; i < players; i++ {
		h.mustCall(who(i), "join", fmt.Sprintf(`{"name":"p%d"}`, i))
		p := mcGetPlayer(t, h, who(i))
		c := [2]int{p.Pos.X, p.Pos.Y}
		if columns[c] {
			t.Fatalf("player %d spawned on %v, taken", i, c)
		}
		columns[c] = true
	}
	h.mustAbort(who(players), "join", `{"name":"late"}`, 109)
	if got := h.resource(channelAccount, "movecraft::Land"); got != fmt.Sprintf(`{"size_x":128,"size_y":128,"size_z":32,"players":%d}`, players) {
		t.Fatalf("land = %s", got)
	}
	for i := 0; i < players; i++ {
		h.mustCall(who(i), "move", xyz(i%128, (i*7)%128, 20+i%10))
	}
	for tick := 0; tick < 200 && h.resource(channelAccount, "movecraft::Schedule") != `{"crops":[],"falling":[],"moving":[]}`; tick++ {
		if ab := h.call(addr(0), "on_tick", nil); ab != nil {
			t.Fatal(ab)
		}
	}
	for i := 0; i < players; i++ {
		if p := mcGetPlayer(t, h, who(i)).Pos; p.X != i%128 || p.Y != (i*7)%128 || p.Z != 20+i%10 {
			t.Fatalf("player %d at %+v, sent to %d,%d,%d", i, p, i%128, (i*7)%128, 20+i%10)
		}
	}
}
