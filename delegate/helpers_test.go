package delegate

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// addr returns a fixed address for i: addr(1) < addr(2) < … .
func addr(i int) protocol.Address {
	var a protocol.Address
	a[len(a)-2] = byte(i >> 8)
	a[len(a)-1] = byte(i)
	return a
}

// addrs returns addr(i) for each i.
func addrs(is ...int) []protocol.Address {
	out := make([]protocol.Address, len(is))
	for k, i := range is {
		out[k] = addr(i)
	}
	return out
}

// mem returns a valid member i that joined i-th, with stake.
func mem(i int, stake uint64) Member {
	return Member{Address: addr(i), Stake: stake, JoinSeq: uint64(i), Valid: true}
}

// invalid returns m without a heartbeat.
func invalid(m Member) Member { m.Valid = false; return m }

// delegating returns m delegating to candidate c, preferring prefs.
func delegating(m Member, c int, prefs ...int) Member {
	if c != 0 {
		m.DelegatedTo = addr(c)
	}
	m.Prefs = addrs(prefs...)
	return m
}

// newRand returns a seeded source and logs the seed, so that a failure can
// be replayed.
func newRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed^0x5eed))
}

// shuffled returns a shuffled copy of ms (their Prefs shared, not copied).
func shuffled(r *rand.Rand, ms []Member) []Member {
	out := slices.Clone(ms)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
