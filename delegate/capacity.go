package delegate

// Seats is the number of candidates of a channel with delegates. A channel
// of at most Seats members has none: every member votes and may lead.
const Seats = 5

// Delegated reports whether a channel of n members runs through candidates.
func Delegated(n uint32) bool { return n > Seats }

// Capacity returns how many delegators one candidate may hold in a channel
// of n members (candidates included): ⌈n/5⌉ − 1, and 0 when n ≤ 5.
//
// The seed says n/5 − 1; rounded down that strands members (27 members
// leave 22 delegators and 5 × (27/5 − 1) = 20 places). Rounded up,
// 5 × (⌈n/5⌉ − 1) ≥ n − 5 for every n: the five candidates can always hold
// every other member, and no candidate holds more than about a fifth.
func Capacity(n uint32) uint32 {
	if n <= Seats {
		return 0
	}
	return (n - 1) / Seats // ⌈n/5⌉ − 1, without overflow at MaxUint32
}
