package contract

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
)

// TestElectionVoteRule: an election passes with votes in favour from more
// than 2/3 of the members (past 5, the candidates) that were valid when it
// was proposed, the leader aside; exactly 2/3 is not enough. The proposer's filing is its vote.
func TestElectionVoteRule(t *testing.T) {
	tests := []struct {
		name    string
		members []string
		offline []string // heartbeats expired before the proposal
		votes   []string // after bob's filing
		voters  int
		want    error
	}{
		{"4 members: 2 of the 3 others is exactly 2/3", seven[:4], nil, []string{"carol"}, 3, ErrNotPassed},
		{"4 members: all 3 others", seven[:4], nil, []string{"carol", "dave"}, 3, nil},
		// Past 5 members only the candidates vote (TestElectionCandidatesOnly).
		{"7 members: 2 of the 4 other candidates", seven, nil, []string{"carol"}, 4, ErrNotPassed},
		{"7 members: 3 of the 4 other candidates", seven, nil, []string{"carol", "dave"}, 4, nil},
		{"7 members, 3 offline: 3 of the 3 valid others", seven, []string{"eve", "frank", "grace"}, []string{"carol", "dave"}, 3, nil},
		{"7 members: two against fail it early", seven, nil, []string{"-carol", "-dave"}, 4, ErrProposalClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel(tc.members...)
			if len(tc.offline) > 0 {
				h.advance(DefaultHeartbeatTTL + time.Second)
				for _, n := range tc.members {
					if !slices.Contains(tc.offline, n) {
						h.keepAll(n)
					}
				}
			}
			pid, err := h.propose("bob", protocol.ProposalElection, &protocol.Election{Epoch: 1, Candidate: h.addr("carol")})
			if err != nil {
				t.Fatal(err)
			}
			wantErr(t, h.vote(pid, "alice"), ErrNotEligible) // the leader
			for _, n := range tc.offline {
				wantErr(t, h.vote(pid, n), ErrNotEligible)
			}
			for _, v := range tc.votes {
				if err := h.vote(pid, v); err != nil {
					t.Fatalf("vote %s: %v", v, err)
				}
			}
			p, _ := GetProposal(h.st, h.ch, pid)
			if len(p.Voters) != tc.voters {
				t.Fatalf("%d voters, want %d", len(p.Voters), tc.voters)
			}
			_, err = h.call("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			wantErr(t, err, tc.want)
			want := h.addr("alice")
			if tc.want == nil {
				want = h.addr("carol")
			}
			if ch := h.chanRec(); ch.Leader != want {
				t.Fatalf("leader %s, want %s", ch.Leader, want)
			}
		})
	}
}

// TestElectionWithoutVoters: with no valid member besides the leader, an
// election could never pass and is refused.
func TestElectionWithoutVoters(t *testing.T) {
	h := newHarness(t)
	h.channel("alice", "bob", "carol")
	h.advance(DefaultHeartbeatTTL + time.Second)
	h.keepAll("alice")
	_, err := h.propose("bob", protocol.ProposalElection, &protocol.Election{Epoch: 1, Candidate: h.addr("carol")})
	wantErr(t, err, ErrNotEligible)
}

// TestProposalRecordCompat: a proposal record from before electorates and
// execution times decodes, with none; a new one round-trips.
func TestProposalRecordCompat(t *testing.T) {
	old := &Proposal{ID: 3, Kind: protocol.ProposalPunish, Data: []byte{1}, Electorate: 3, MaxJoinSeq: 3, For: 2}
	e := protocol.NewEncoder(0)
	old.Encode(e)
	legacy := e.Out() // no tail: nothing past ExecutedHeight is set
	var got Proposal
	d := protocol.NewDecoder(legacy)
	got.Decode(d)
	if err := d.Finish(); err != nil || got.Voters != nil || got.ElectorateSize() != 3 || got.VotesNeeded() != 2 || !got.Passed(0) {
		t.Fatalf("legacy record %+v: %v", got, err)
	}
	cur := *old
	cur.Voters = []protocol.Address{{1}, {2}}
	cur.ExecutedAtMs = 9
	e = protocol.NewEncoder(0)
	cur.Encode(e)
	if !bytes.HasPrefix(e.Out(), legacy) {
		t.Fatal("new fields are not at the end")
	}
	var back Proposal
	d = protocol.NewDecoder(e.Out())
	back.Decode(d)
	if err := d.Finish(); err != nil || len(back.Voters) != 2 || back.ExecutedAtMs != 9 {
		t.Fatalf("round trip %+v: %v", back, err)
	}
	unsorted := cur
	unsorted.Voters = []protocol.Address{{2}, {1}}
	e = protocol.NewEncoder(0)
	unsorted.Encode(e)
	d = protocol.NewDecoder(e.Out())
	back.Decode(d)
	if d.Finish() == nil {
		t.Fatal("unsorted voters decoded")
	}
}

// FuzzDecodeProposal: a proposal record (it also crosses the chain's gRPC
// API) decodes without a panic, and what decodes is canonical.
func FuzzDecodeProposal(f *testing.F) {
	for _, p := range []*Proposal{
		{ID: 1, Kind: protocol.ProposalSettlement, Data: []byte{1}, Electorate: 3, MaxJoinSeq: 3},
		{ID: 2, Kind: protocol.ProposalPunish, Voters: []protocol.Address{{1}, {2}}, DeadlineMs: 5, For: 1},
		{ID: 3, Kind: protocol.ProposalElection, Status: ProposalExecuted, ExecutedAtMs: 9},
	} {
		e := protocol.NewEncoder(0)
		p.Encode(e)
		f.Add(e.Out())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Proposal
		d := protocol.NewDecoder(b)
		p.Decode(d)
		if d.Finish() != nil {
			return
		}
		e := protocol.NewEncoder(0)
		p.Encode(e)
		if !bytes.Equal(e.Out(), b) {
			t.Fatalf("decoded %x but encodes as %x", b, e.Out())
		}
	})
}
