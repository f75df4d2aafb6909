package console

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// BenchmarkWorldTick measures what a MoveCraft channel view costs per
// height: applying one tick's outcome with 50 players walking (and the
// delta the page gets), outside the lock of anything else.
func BenchmarkWorldTick(b *testing.B) {
	r := newMCRun(b)
	for i := range 50 {
		var a protocol.Address
		a[14], a[15] = 1, byte(i)
		r.call(a, "join", fmt.Sprintf(`{"name":"p%d"}`, i))
		r.call(a, "move", fmt.Sprintf(`{"x":%d,"y":%d,"z":12}`, 10+i, 120-i))
	}
	m := newModel(r.st, nil)
	m.load(r.st.Clone())
	var ticks []*protocol.Outcome
	for range 20 {
		ticks = append(ticks, r.tick())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.apply(r.st, ticks[i%len(ticks)])
		if d := m.delta(); d == nil {
			b.Fatal("a tick moved nobody")
		}
	}
}

// BenchmarkWorldSnapshot measures the snapshot a page gets when it
// connects: the whole map and the players, as JSON.
func BenchmarkWorldSnapshot(b *testing.B) {
	r := newMCRun(b)
	m := newModel(r.st, nil)
	m.load(r.st)
	b.ReportAllocs()
	b.ResetTimer()
	var n int
	for i := 0; i < b.N; i++ {
		out, err := json.Marshal(m.view())
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.ReportMetric(float64(n), "bytes/snapshot")
}
