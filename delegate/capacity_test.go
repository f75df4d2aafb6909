package delegate

import "testing"

func TestCapacity(t *testing.T) {
	cases := []struct {
		name string
		n    uint32
		want uint32
	}{
		{"no delegates up to five members", 5, 0},
		{"an empty channel has none", 0, 0},
		{"six members: one delegator each", 6, 1},
		{"ten members: a fifth minus the candidate", 10, 1},
		{"eleven rounds up", 11, 2},
		{"twenty-seven rounds up where n/5 − 1 would strand two", 27, 5},
		{"a thousand", 1000, 199},
		{"no overflow at the top", 4294967295, 858993458},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Capacity(tc.n); got != tc.want {
				t.Fatalf("Capacity(%d) = %d, want %d", tc.n, got, tc.want)
			}
		})
	}
}

// TestCapacityHoldsEveryone: for every channel size with delegates, the
// five candidates can hold every other member, and no candidate has to
// hold more than a fifth of the channel.
func TestCapacityHoldsEveryone(t *testing.T) {
	for n := uint32(6); n <= 1000; n++ {
		c := Capacity(n)
		if Seats*c < n-Seats {
			t.Fatalf("n=%d: %d seats × capacity %d = %d places for %d delegators", n, Seats, c, Seats*c, n-Seats)
		}
		if c+1 > (n+Seats-1)/Seats {
			t.Fatalf("n=%d: capacity %d lets a candidate carry more than ⌈n/5⌉ members", n, c)
		}
	}
}
