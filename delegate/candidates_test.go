package delegate

import (
	"errors"
	"slices"
	"testing"

	"github.com/scraft/scraft/protocol"
)

func TestCandidates(t *testing.T) {
	seven := []Member{mem(1, 100), mem(2, 100), mem(3, 100), mem(4, 100), mem(5, 100), mem(6, 100), mem(7, 100)}
	cases := []struct {
		name    string
		members []Member
		current []protocol.Address
		want    []protocol.Address
	}{
		{"first election: most stake first", []Member{mem(1, 10), mem(2, 50), mem(3, 30), mem(4, 20), mem(5, 40), mem(6, 60), mem(7, 5)}, nil, addrs(6, 2, 5, 3, 4)},
		{"equal stake: earliest joined", seven, nil, addrs(1, 2, 3, 4, 5)},
		{"fewer valid members than seats: all of them", []Member{mem(1, 1), invalid(mem(2, 9)), mem(3, 2)}, nil, addrs(3, 1)},
		{"a richer newcomer within the margin does not unseat", append(slices.Clone(seven), mem(8, 110)), addrs(1, 2, 3, 4, 5), addrs(1, 2, 3, 4, 5)},
		{"a richer newcomer beyond the margin takes the weakest seat", append(slices.Clone(seven), mem(8, 111)), addrs(1, 2, 3, 4, 5), addrs(8, 1, 2, 3, 4)},
		{"the weakest seat is the latest joined among equals", append(slices.Clone(seven), mem(8, 111)), addrs(5, 4, 3, 2, 1), addrs(8, 1, 2, 3, 4)},
		{"incumbency beats join order", seven, addrs(3, 4, 5, 6, 7), addrs(3, 4, 5, 6, 7)},
		{"an incumbent that stops heartbeating loses its seat to the best ranked", []Member{invalid(mem(1, 100)), mem(2, 100), mem(3, 100), mem(4, 100), mem(5, 100), mem(6, 100), mem(7, 100)}, addrs(1, 2, 3, 4, 5), addrs(2, 3, 4, 5, 6)},
		{"an incumbent that left loses its seat", seven[1:], addrs(1, 2, 3, 4, 5), addrs(2, 3, 4, 5, 6)},
		{"an empty seat goes to the richest, not the incumbents' order", append(slices.Clone(seven[1:]), mem(8, 50), mem(9, 105)), addrs(1, 2, 3, 4, 5), addrs(9, 2, 3, 4, 5)},
		{"several challengers take several seats", []Member{mem(1, 10), mem(2, 10), mem(3, 10), mem(4, 10), mem(5, 10), mem(6, 100), mem(7, 100)}, addrs(1, 2, 3, 4, 5), addrs(6, 7, 1, 2, 3)},
		{"a displaced incumbent does not bounce back", []Member{mem(1, 100), mem(2, 100), mem(3, 100), mem(4, 100), mem(5, 10), mem(6, 12), mem(7, 15)}, addrs(1, 2, 3, 4, 5), addrs(1, 2, 3, 4, 7)},
		{"zero stake incumbents yield to any stake", []Member{mem(1, 0), mem(2, 0), mem(3, 0), mem(4, 0), mem(5, 0), mem(6, 1)}, addrs(1, 2, 3, 4, 5), addrs(6, 1, 2, 3, 4)},
		{"unknown and repeated current addresses are ignored", seven, append(addrs(1, 1, 2, 3, 4, 5), addr(99)), addrs(1, 2, 3, 4, 5)},
		{"a current set larger than the seats keeps the best ranked", seven, addrs(7, 6, 5, 4, 3, 2), addrs(2, 3, 4, 5, 6)},
		{"the margin holds at huge stakes without overflow", []Member{mem(1, 1<<63), mem(2, 1<<63), mem(3, 1<<63), mem(4, 1<<63), mem(5, 1<<63), mem(6, ^uint64(0))}, addrs(1, 2, 3, 4, 5), addrs(6, 1, 2, 3, 4)},
		{"no members, no candidates", nil, addrs(1), []protocol.Address{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Candidates(tc.members, tc.current)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Candidates = %v,\nwant %v", got, tc.want)
			}
		})
	}
}

func TestOutranksMargin(t *testing.T) {
	cases := []struct {
		name      string
		challenge uint64
		incumbent uint64
		want      bool
	}{
		{"exactly 10% more is not enough", 110, 100, false},
		{"just over 10% more is", 111, 100, true},
		{"less is not", 90, 100, false},
		{"equal is not", 100, 100, false},
		{"fractional margin: 11 over 10 is exactly 10%", 11, 10, false},
		{"fractional margin: 12 over 10", 12, 10, true},
		{"small stakes: 1 over 0", 1, 0, true},
		{"at the top of uint64, beyond the margin", ^uint64(0), ^uint64(0) / 2, true},
		{"at the top of uint64, within it", ^uint64(0), ^uint64(0) - 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, w := Member{Stake: tc.challenge}, Member{Stake: tc.incumbent}
			if got := outranks(&c, &w); got != tc.want {
				t.Fatalf("outranks(%d, %d) = %v, want %v", tc.challenge, tc.incumbent, got, tc.want)
			}
		})
	}
}

func TestCandidatesRefusesDuplicateMembers(t *testing.T) {
	_, err := Candidates([]Member{mem(1, 1), mem(2, 1), mem(1, 5)}, nil)
	if !errors.Is(err, ErrDuplicateMember) {
		t.Fatalf("err = %v, want ErrDuplicateMember", err)
	}
}
