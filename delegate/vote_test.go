package delegate

import (
	"errors"
	"slices"
	"testing"

	"github.com/scraft/scraft/protocol"
)

var testChannel = protocol.ChannelID{0xc4}

// keys returns n fixed keys, sorted by address, so that the i-th key's
// address sorts i-th.
func keys(t testing.TB, n int) []*protocol.Key {
	t.Helper()
	out := make([]*protocol.Key, n)
	for i := range out {
		seed := make([]byte, 32)
		seed[0], seed[1] = byte(i), byte(i>>8)
		k, err := protocol.KeyFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = k
	}
	slices.SortFunc(out, func(a, b *protocol.Key) int { return a.Address().Compare(b.Address()) })
	return out
}

func vote(k *protocol.Key, o protocol.VoteOption) protocol.Vote {
	v := protocol.Vote{Channel: testChannel, Proposal: 7, Option: o}
	v.Sign(k)
	return v
}

func TestAggregate(t *testing.T) {
	ks := keys(t, 8)
	a := func(i int) protocol.Address { return ks[i].Address() }
	electorate := make([]protocol.Address, len(ks))
	for i, k := range ks {
		electorate[i] = k.Address()
	}
	// 0 and 1 are candidates; 2, 3, 4 delegate to 0; 5, 6 to 1; 7 to none.
	delegations := []Assignment{
		{a(2), a(0)}, {a(3), a(0)}, {a(4), a(0)}, {a(5), a(1)}, {a(6), a(1)}, {a(7), protocol.Address{}},
	}
	for_, against, abstain := protocol.VoteFor, protocol.VoteAgainst, protocol.VoteAbstain
	cases := []struct {
		name  string
		votes []protocol.Vote
		want  Tally
	}{
		{"nobody votes: all silent", nil, Tally{Silent: 8}},
		{"a candidate votes for its silent delegators", []protocol.Vote{vote(ks[0], for_)}, Tally{For: 4, Silent: 4}},
		{"a delegator's own vote overrides its candidate's", []protocol.Vote{vote(ks[0], for_), vote(ks[3], against)}, Tally{For: 3, Against: 1, Silent: 4}},
		{"a delegator votes while its candidate is silent", []protocol.Vote{vote(ks[5], abstain)}, Tally{Abstain: 1, Silent: 7}},
		{"a member without a candidate counts only itself", []protocol.Vote{vote(ks[7], for_)}, Tally{For: 1, Silent: 7}},
		{"both candidates and some delegators", []protocol.Vote{vote(ks[1], against), vote(ks[0], for_), vote(ks[6], for_), vote(ks[7], abstain), vote(ks[2], for_)},
			Tally{For: 5, Against: 2, Abstain: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Aggregate(testChannel, 7, electorate, delegations, tc.votes)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("tally %+v, want %+v", got, tc.want)
			}
			if got.Total() != uint64(len(electorate)) {
				t.Fatalf("total %d of %d members", got.Total(), len(electorate))
			}
		})
	}
}

func TestAggregateRefuses(t *testing.T) {
	ks := keys(t, 4)
	outsider, err := protocol.KeyFromSeed(slices.Repeat([]byte{0xff}, 32))
	if err != nil {
		t.Fatal(err)
	}
	a := func(i int) protocol.Address { return ks[i].Address() }
	electorate := []protocol.Address{a(0), a(1), a(2), a(3)}
	ok := []Assignment{{a(2), a(0)}, {a(3), a(1)}}

	forged := vote(ks[2], protocol.VoteFor)
	forged.Option = protocol.VoteAgainst // signature no longer matches
	stolen := vote(ks[2], protocol.VoteFor)
	stolen.Voter = a(3) // key is not the voter's
	elsewhere := vote(ks[2], protocol.VoteFor)
	elsewhere.Proposal = 8
	elsewhere.Sign(ks[2])
	outOfRange := protocol.Vote{Channel: testChannel, Proposal: 7, Option: 3}
	outOfRange.Sign(ks[2])

	cases := []struct {
		name        string
		electorate  []protocol.Address
		delegations []Assignment
		votes       []protocol.Vote
		want        error
	}{
		{"a forged signature", electorate, ok, []protocol.Vote{forged}, ErrBadVote},
		{"another member's key", electorate, ok, []protocol.Vote{stolen}, ErrBadVote},
		{"a vote on another proposal", electorate, ok, []protocol.Vote{elsewhere}, ErrBadVote},
		{"an option out of range", electorate, ok, []protocol.Vote{outOfRange}, ErrBadVote},
		{"a voter outside the electorate", electorate, ok, []protocol.Vote{vote(outsider, protocol.VoteFor)}, ErrUnknownMember},
		{"two votes by one voter", electorate, ok, []protocol.Vote{vote(ks[2], protocol.VoteFor), vote(ks[2], protocol.VoteFor)}, ErrDuplicateVote},
		{"a member twice in the electorate", append(slices.Clone(electorate), a(0)), ok, nil, ErrDuplicateMember},
		{"a delegation to oneself", electorate, []Assignment{{a(2), a(2)}}, nil, ErrBadDelegation},
		{"a member delegating twice", electorate, []Assignment{{a(2), a(0)}, {a(2), a(1)}}, nil, ErrBadDelegation},
		{"a delegation to a member that delegates", electorate, []Assignment{{a(2), a(0)}, {a(3), a(2)}}, nil, ErrBadDelegation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Aggregate(testChannel, 7, tc.electorate, tc.delegations, tc.votes)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestAggregateOutsideElectorate: delegations naming members outside the
// electorate (joined after the proposal, say) carry no weight.
func TestAggregateOutsideElectorate(t *testing.T) {
	ks := keys(t, 5)
	a := func(i int) protocol.Address { return ks[i].Address() }
	electorate := []protocol.Address{a(0), a(1), a(2)}
	// 3 (outside) delegates to 0; 2 delegates to 4 (outside).
	ds := []Assignment{{a(1), a(0)}, {a(3), a(0)}, {a(2), a(4)}}
	got, err := Aggregate(testChannel, 7, electorate, ds, []protocol.Vote{vote(ks[0], protocol.VoteFor)})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Tally{For: 2, Silent: 1}); got != want {
		t.Fatalf("tally %+v, want %+v", got, want)
	}
}

func TestVerifyVote(t *testing.T) {
	k := keys(t, 1)[0]
	v := vote(k, protocol.VoteFor)
	if err := VerifyVote(&v, testChannel, 7); err != nil {
		t.Fatalf("a good vote: %v", err)
	}
	if err := VerifyVote(&v, protocol.ChannelID{1}, 7); !errors.Is(err, ErrBadVote) {
		t.Fatalf("another channel: %v", err)
	}
	v.Signature[0] ^= 1
	err := VerifyVote(&v, testChannel, 7)
	if !errors.Is(err, ErrBadVote) || !errors.Is(err, protocol.ErrBadSignature) {
		t.Fatalf("a bad signature: %v, want ErrBadVote wrapping protocol's", err)
	}
}

// TestCountAgreesWithAggregate: Count, for votes whose authors are known,
// gives Aggregate's tally and refusals.
func TestCountAgreesWithAggregate(t *testing.T) {
	ks := keys(t, 8)
	a := func(i int) protocol.Address { return ks[i].Address() }
	electorate := make([]protocol.Address, len(ks))
	for i := range ks {
		electorate[i] = a(i)
	}
	ds := []Assignment{{a(2), a(0)}, {a(3), a(0)}, {a(4), a(0)}, {a(5), a(1)}, {a(6), a(1)}}
	votes := []protocol.Vote{vote(ks[1], protocol.VoteAgainst), vote(ks[0], protocol.VoteFor), vote(ks[6], protocol.VoteFor), vote(ks[2], protocol.VoteAbstain)}
	cast := make([]Cast, len(votes))
	for i, v := range votes {
		cast[i] = Cast{Voter: v.Voter, Option: v.Option}
	}
	want, err := Aggregate(testChannel, 7, electorate, ds, votes)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Count(electorate, ds, cast); err != nil || got != want {
		t.Fatalf("Count = %+v, %v; Aggregate = %+v", got, err, want)
	}
	for _, tc := range []struct {
		name string
		cast []Cast
		want error
	}{
		{"an option out of range", []Cast{{a(2), 3}}, ErrBadVote},
		{"a voter outside the electorate", []Cast{{protocol.Address{0xff}, protocol.VoteFor}}, ErrUnknownMember},
		{"two votes by one voter", []Cast{{a(2), protocol.VoteFor}, {a(2), protocol.VoteAgainst}}, ErrDuplicateVote},
	} {
		if _, err := Count(electorate, ds, tc.cast); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestCountedAs: the option a count gives one voter is its own vote, else
// its candidate's, else none; and Count tallies the same.
func TestCountedAs(t *testing.T) {
	ks := keys(t, 3)
	d, c, o := ks[0].Address(), ks[1].Address(), ks[2].Address()
	for _, tc := range []struct {
		name      string
		votes     []Cast
		candidate protocol.Address
		want      protocol.VoteOption
		ok        bool
	}{
		{"silent, candidate silent", []Cast{{o, protocol.VoteFor}}, c, 0, false},
		{"silent, candidate voted", []Cast{{c, protocol.VoteAgainst}, {o, protocol.VoteFor}}, c, protocol.VoteAgainst, true},
		{"own vote overrides", []Cast{{c, protocol.VoteAgainst}, {d, protocol.VoteFor}}, c, protocol.VoteFor, true},
		{"own vote before the candidate's", []Cast{{d, protocol.VoteAbstain}, {c, protocol.VoteFor}}, c, protocol.VoteAbstain, true},
		{"no candidate", []Cast{{c, protocol.VoteFor}}, protocol.Address{}, 0, false},
		{"another's vote is not the candidate's", []Cast{{o, protocol.VoteFor}}, c, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := CountedAs(tc.votes, d, tc.candidate)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("CountedAs = %s, %v; want %s, %v", got, ok, tc.want, tc.ok)
			}
			var ds []Assignment
			if !tc.candidate.IsZero() {
				ds = []Assignment{{Delegator: d, Candidate: tc.candidate}}
			}
			// d alone: the same count without d's share tells it.
			all, err := Count([]protocol.Address{d, c, o}, ds, tc.votes)
			if err != nil {
				t.Fatal(err)
			}
			var rest []Cast
			for _, v := range tc.votes {
				if v.Voter != d {
					rest = append(rest, v)
				}
			}
			without, err := Count([]protocol.Address{c, o}, nil, rest)
			if err != nil {
				t.Fatal(err)
			}
			share := Tally{For: all.For - without.For, Against: all.Against - without.Against,
				Abstain: all.Abstain - without.Abstain, Silent: all.Silent - without.Silent}
			var want Tally
			if ok {
				want.add(got)
			} else {
				want.Silent = 1
			}
			if share != want {
				t.Fatalf("Count gives d %+v, CountedAs %+v", share, want)
			}
		})
	}
}
