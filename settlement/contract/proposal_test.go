package contract

import (
	"testing"

	"github.com/scraft/scraft/protocol"
)

var (
	accA = protocol.Address{0xaa}
	keyG = protocol.ResourceKey{Account: accA, Type: "chat::ChatGroup"}
)

func mustCS(t *testing.T, cs ...protocol.Change) protocol.ChangeSet {
	out, err := protocol.NewChangeSet(cs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCreateProposal(t *testing.T) {
	tests := []struct {
		name string
		by   string
		kind protocol.ProposalKind
		data func(h *harness) []byte
		want error
	}{
		{"settlement", "alice", protocol.ProposalSettlement, func(h *harness) []byte {
			return protocol.Marshal(&protocol.Settlement{From: 1, To: 9, ChangeSet: mustCS(t, protocol.Change{Key: keyG, Kind: protocol.OpNew, New: []byte("g")})})
		}, nil},
		{"settlement not from settled+1", "alice", protocol.ProposalSettlement, func(h *harness) []byte {
			return protocol.Marshal(&protocol.Settlement{From: 2, To: 9})
		}, ErrBadRange},
		{"settlement change set does not fit", "alice", protocol.ProposalSettlement, func(h *harness) []byte {
			return protocol.Marshal(&protocol.Settlement{From: 1, To: 9, ChangeSet: mustCS(t, protocol.Change{Key: keyG, Kind: protocol.OpModify, Old: []byte("x"), New: []byte("g")})})
		}, ErrStateMismatch},
		{"settlement malformed", "alice", protocol.ProposalSettlement, func(h *harness) []byte { return []byte{1, 2, 3} }, ErrMalformed},
		{"settlement trailing bytes", "alice", protocol.ProposalSettlement, func(h *harness) []byte {
			return append(protocol.Marshal(&protocol.Settlement{From: 1, To: 9}), 0)
		}, ErrMalformed},
		{"unknown kind", "alice", 9, func(h *harness) []byte { return nil }, ErrMalformed},
		{"by a non-member", "mallory", protocol.ProposalSettlement, func(h *harness) []byte {
			return protocol.Marshal(&protocol.Settlement{From: 1, To: 9})
		}, ErrNotMember},
		{"election", "bob", protocol.ProposalElection, func(h *harness) []byte {
			return protocol.Marshal(&protocol.Election{Epoch: 1, Candidate: h.addr("carol")})
		}, nil},
		{"election for an old epoch", "bob", protocol.ProposalElection, func(h *harness) []byte {
			return protocol.Marshal(&protocol.Election{Epoch: 0, Candidate: h.addr("carol")})
		}, ErrStaleEpoch},
		{"election of the leader", "bob", protocol.ProposalElection, func(h *harness) []byte {
			return protocol.Marshal(&protocol.Election{Epoch: 1, Candidate: h.addr("alice")})
		}, ErrAlreadyLeader},
		{"election of a non-member", "bob", protocol.ProposalElection, func(h *harness) []byte {
			return protocol.Marshal(&protocol.Election{Epoch: 1, Candidate: h.addr("mallory")})
		}, ErrNotMember},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob", "carol")
			rc, err := h.call(tc.by, &CreateProposal{Channel: h.ch, Type: tc.kind, Data: tc.data(h)})
			wantErr(t, err, tc.want)
			if err != nil {
				return
			}
			p, err := GetProposal(h.st, h.ch, rc.Proposal)
			if err != nil || p.ID != 1 || p.Kind != tc.kind || p.Electorate != 3 || p.MaxJoinSeq != 3 || p.Status != ProposalOpen {
				t.Fatalf("proposal %+v, %v", p, err)
			}
		})
	}
}

func TestVote(t *testing.T) {
	signed := func(h *harness, who string, pid uint64, opt protocol.VoteOption) protocol.Vote {
		v := protocol.Vote{Channel: h.ch, Proposal: pid, Option: opt}
		v.Sign(h.key(who))
		return v
	}
	tests := []struct {
		name    string
		run     func(h *harness, pid uint64) error
		want    error
		tallies [3]uint32 // for, against, abstain
	}{
		{"for, against, abstain", func(h *harness, pid uint64) error {
			h.must("alice", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			h.must("bob", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteAgainst})
			_, err := h.call("carol", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteAbstain})
			return err
		}, nil, [3]uint32{1, 1, 1}},
		{"twice", func(h *harness, pid uint64) error {
			h.must("alice", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			_, err := h.call("alice", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteAgainst})
			return err
		}, ErrAlreadyVoted, [3]uint32{1, 0, 0}},
		{"bad option", func(h *harness, pid uint64) error {
			_, err := h.call("alice", &Vote{Channel: h.ch, Proposal: pid, Option: 3})
			return err
		}, ErrMalformed, [3]uint32{}},
		{"non-member", func(h *harness, pid uint64) error {
			_, err := h.call("mallory", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			return err
		}, ErrNotMember, [3]uint32{}},
		{"joined after the proposal", func(h *harness, pid uint64) error {
			h.must("dave", &Stake{Channel: h.ch, Amount: 100})
			h.must("dave", &Join{Channel: h.ch})
			_, err := h.call("dave", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			return err
		}, ErrNotEligible, [3]uint32{}},
		{"unknown proposal", func(h *harness, pid uint64) error {
			_, err := h.call("alice", &Vote{Channel: h.ch, Proposal: pid + 1, Option: protocol.VoteFor})
			return err
		}, ErrNoProposal, [3]uint32{}},
		{"on an executed proposal", func(h *harness, pid uint64) error {
			h.must("alice", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			h.must("bob", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			h.must("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			_, err := h.call("carol", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			return err
		}, ErrProposalClosed, [3]uint32{2, 0, 0}},
		{"signed votes carried by anyone", func(h *harness, pid uint64) error {
			_, err := h.call("mallory", &SubmitVotes{Channel: h.ch, Proposal: pid, Votes: []protocol.Vote{
				signed(h, "alice", pid, protocol.VoteFor), signed(h, "bob", pid, protocol.VoteFor), signed(h, "carol", pid, protocol.VoteAgainst)}})
			return err
		}, nil, [3]uint32{2, 1, 0}},
		{"signed vote forged: none counts", func(h *harness, pid uint64) error {
			v := signed(h, "bob", pid, protocol.VoteFor)
			v.Option = protocol.VoteAgainst
			_, err := h.call("alice", &SubmitVotes{Channel: h.ch, Proposal: pid, Votes: []protocol.Vote{signed(h, "alice", pid, protocol.VoteFor), v}})
			return err
		}, ErrBadVote, [3]uint32{}},
		{"signed vote for another proposal", func(h *harness, pid uint64) error {
			_, err := h.call("alice", &SubmitVotes{Channel: h.ch, Proposal: pid, Votes: []protocol.Vote{signed(h, "alice", pid+1, protocol.VoteFor)}})
			return err
		}, ErrBadVote, [3]uint32{}},
		{"signed votes repeated", func(h *harness, pid uint64) error {
			_, err := h.call("alice", &SubmitVotes{Channel: h.ch, Proposal: pid, Votes: []protocol.Vote{signed(h, "bob", pid, protocol.VoteFor), signed(h, "bob", pid, protocol.VoteFor)}})
			return err
		}, ErrAlreadyVoted, [3]uint32{}},
		{"signed vote of a non-member", func(h *harness, pid uint64) error {
			_, err := h.call("alice", &SubmitVotes{Channel: h.ch, Proposal: pid, Votes: []protocol.Vote{signed(h, "mallory", pid, protocol.VoteFor)}})
			return err
		}, ErrNotMember, [3]uint32{}},
		{"no votes", func(h *harness, pid uint64) error {
			_, err := h.call("alice", &SubmitVotes{Channel: h.ch, Proposal: pid})
			return err
		}, ErrMalformed, [3]uint32{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob", "carol")
			pid, err := h.propose("alice", protocol.ProposalSettlement, &protocol.Settlement{From: 1, To: 3})
			if err != nil {
				t.Fatal(err)
			}
			wantErr(t, tc.run(h, pid), tc.want)
			p, _ := GetProposal(h.st, h.ch, pid)
			if got := [3]uint32{p.For, p.Against, p.Abstain}; got != tc.tallies {
				t.Fatalf("tallies %v, want %v", got, tc.tallies)
			}
		})
	}
}

func TestExecuteSettlement(t *testing.T) {
	create := mustCS(t, protocol.Change{Key: keyG, Kind: protocol.OpNew, New: []byte("v1")})
	modify := mustCS(t, protocol.Change{Key: keyG, Kind: protocol.OpModify, Old: []byte("v1"), New: []byte("v2")})
	digest := protocol.Hash{7}
	stateHash, stateHash2 := protocol.Hash{0x51}, protocol.Hash{0x52}
	tests := []struct {
		name       string
		votes      []string
		run        func(h *harness, pid uint64) error
		want       error
		settled    uint64
		stateValue string
	}{
		{"2 of 3 in favour", []string{"alice", "bob"}, nil, nil, 10, "v1"},
		{"1 of 3 in favour", []string{"alice"}, nil, ErrNotPassed, 0, ""},
		{"executed twice", []string{"alice", "bob"}, func(h *harness, pid uint64) error {
			h.must("alice", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			_, err := h.call("alice", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			return err
		}, ErrProposalClosed, 10, "v1"},
		{"two proposals for the same range: second is stale", []string{"alice", "bob"}, func(h *harness, pid uint64) error {
			p2, err := h.propose("bob", protocol.ProposalSettlement, &protocol.Settlement{From: 1, To: 12, ChangeSet: create})
			if err != nil {
				return err
			}
			h.must("alice", &Vote{Channel: h.ch, Proposal: p2, Option: protocol.VoteFor})
			h.must("bob", &Vote{Channel: h.ch, Proposal: p2, Option: protocol.VoteFor})
			h.must("alice", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			_, err = h.call("alice", &ExecuteProposal{Channel: h.ch, Proposal: p2})
			return err
		}, ErrBadRange, 10, "v1"},
		{"next range modifies", []string{"alice", "bob"}, func(h *harness, pid uint64) error {
			h.must("alice", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			p2, err := h.propose("bob", protocol.ProposalSettlement, &protocol.Settlement{From: 11, To: 20, ChangeSet: modify, Digest: digest, StateHash: stateHash2})
			if err != nil {
				return err
			}
			h.must("alice", &Vote{Channel: h.ch, Proposal: p2, Option: protocol.VoteFor})
			h.must("carol", &Vote{Channel: h.ch, Proposal: p2, Option: protocol.VoteFor})
			_, err = h.call("bob", &ExecuteProposal{Channel: h.ch, Proposal: p2})
			return err
		}, nil, 20, "v2"},
		{"unknown proposal", nil, func(h *harness, pid uint64) error {
			_, err := h.call("alice", &ExecuteProposal{Channel: h.ch, Proposal: 99})
			return err
		}, ErrNoProposal, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob", "carol")
			pid, err := h.propose("alice", protocol.ProposalSettlement, &protocol.Settlement{From: 1, To: 10, ChangeSet: create, Digest: digest, StateHash: stateHash})
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range tc.votes {
				h.must(n, &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			}
			run := tc.run
			if run == nil {
				run = func(h *harness, pid uint64) error {
					_, err := h.call("carol", &ExecuteProposal{Channel: h.ch, Proposal: pid})
					return err
				}
			}
			wantErr(t, run(h, pid), tc.want)
			ch := h.chanRec()
			if ch.SettledHeight != tc.settled {
				t.Fatalf("settled height %d, want %d", ch.SettledHeight, tc.settled)
			}
			st, _ := GetSettledState(h.st, h.ch)
			if string(st[keyG]) != tc.stateValue {
				t.Fatalf("state value %q, want %q", st[keyG], tc.stateValue)
			}
			if tc.settled > 0 && ch.SettledDigest != digest {
				t.Fatalf("digest %s", ch.SettledDigest)
			}
			wantState := map[uint64]protocol.Hash{10: stateHash, 20: stateHash2}[tc.settled]
			if ch.SettledStateHash != wantState {
				t.Fatalf("settled state hash %s, want %s", ch.SettledStateHash, wantState)
			}
		})
	}
}

func TestExecuteElection(t *testing.T) {
	tests := []struct {
		name  string
		votes []string
		bump  bool // the epoch moves before execution
		want  error
	}{
		{"both of the 2 others (filing is bob's vote)", []string{"carol"}, false, nil},
		{"1 of the 2 others", nil, false, ErrNotPassed},
		{"epoch moved", []string{"carol"}, true, ErrStaleEpoch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob", "carol")
			pid, err := h.propose("bob", protocol.ProposalElection, &protocol.Election{Epoch: 1, Candidate: h.addr("carol")})
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range tc.votes {
				h.must(n, &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			}
			if tc.bump {
				h.must("bob", &ClaimLeader{Channel: h.ch, Epoch: 1, Attestations: h.attest(1, "bob", "bob", "carol")})
			}
			_, err = h.call("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			wantErr(t, err, tc.want)
			if err == nil {
				if ch := h.chanRec(); ch.Leader != h.addr("carol") || ch.Epoch != 2 {
					t.Fatalf("leader %s epoch %d", ch.Leader, ch.Epoch)
				}
			}
		})
	}
}

// TestChannelRecordStateHashCompat: a channel record written before the
// settled state hash existed decodes with it zero; one with it round-trips.
func TestChannelRecordStateHashCompat(t *testing.T) {
	ch := Channel{ID: protocol.ChannelID{1}, Contract: "c", SettledHeight: 5, Members: 2}
	old := protocol.Marshal(&ch) // no trailing field set: the record as it was
	var got Channel
	if err := protocol.Unmarshal(old, &got); err != nil || got.SettledHeight != 5 || !got.SettledStateHash.IsZero() {
		t.Fatalf("old record: %v %+v", err, got)
	}
	ch.SettledStateHash = protocol.Hash{9}
	if full := protocol.Marshal(&ch); len(full) != len(old)+8+len(protocol.Hash{}) {
		t.Fatalf("a record with the hash set is %d bytes, want the old %d + versions + hash", len(full), len(old))
	}
	if err := protocol.Unmarshal(protocol.Marshal(&ch), &got); err != nil || got.SettledStateHash != ch.SettledStateHash {
		t.Fatalf("record round trip: %v %s", err, got.SettledStateHash)
	}
}
