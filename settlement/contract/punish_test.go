package contract

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
)

func TestPunishEvidence(t *testing.T) {
	tests := []struct {
		name   string
		by     string
		mutate func(h *harness, p *protocol.Punish)
		want   error
	}{
		{"valid", "bob", nil, nil},
		{"target reports itself", "alice", nil, ErrBadEvidence},
		{"target not a member", "bob", func(h *harness, p *protocol.Punish) { p.Target = h.addr("mallory") }, ErrNotMember},
		{"batch signed by someone else", "bob", func(h *harness, p *protocol.Punish) {
			b, _ := protocol.DecodeBatch(p.Batch)
			b.Sign(h.key("carol"))
			p.Batch = b.Bytes()
		}, ErrBadEvidence},
		{"batch signature forged", "bob", func(h *harness, p *protocol.Punish) {
			b, _ := protocol.DecodeBatch(p.Batch)
			b.Results[0].GasUsed = 12
			p.Batch = b.Bytes()
		}, ErrBadEvidence},
		{"batch not decodable", "bob", func(h *harness, p *protocol.Punish) { p.Batch = []byte{1, 2, 3} }, ErrBadEvidence},
		{"height outside the batch", "bob", func(h *harness, p *protocol.Punish) { p.Height = 8 }, ErrBadEvidence},
		{"results agree", "bob", func(h *harness, p *protocol.Punish) { p.Honest.GasUsed = 11 }, ErrBadEvidence},
		{"honest change set does not match its hash", "bob", func(h *harness, p *protocol.Punish) {
			p.HonestChangeSet = mustCS(t, protocol.Change{Key: keyG, Kind: protocol.OpNew, New: []byte("x")})
		}, ErrBadEvidence},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob", "carol")
			p := h.punishment("alice")
			if tc.mutate != nil {
				tc.mutate(h, p)
			}
			_, err := h.propose(tc.by, protocol.ProposalPunish, p)
			wantErr(t, err, tc.want)
		})
	}
}

// vote casts a vote given as "name" (for), "-name" (against) or "~name"
// (abstain).
func (h *harness) vote(pid uint64, v string) error {
	opt := protocol.VoteFor
	switch v[0] {
	case '-':
		v, opt = v[1:], protocol.VoteAgainst
	case '~':
		v, opt = v[1:], protocol.VoteAbstain
	}
	_, err := h.call(v, &Vote{Channel: h.ch, Proposal: pid, Option: opt})
	return err
}

var seven = []string{"alice", "bob", "carol", "dave", "eve", "frank", "grace"}

// TestPunishVoteRule plays the vote rule as an attacker would: alice leads
// honestly (or not), bob reports her and his filing is his vote; a punish
// proposal passes with votes in favour from at least 2/3 of the members
// other than the target.
func TestPunishVoteRule(t *testing.T) {
	initial := DefaultParams().InitialBalance
	tests := []struct {
		name       string
		members    []string
		votes      []string // after bob's filing
		want       error    // of execution
		standing   ProposalStatus
		fine       uint64
		leader     string // "" for none
		epoch      uint64
		targetBack uint64 // collateral returned to the target
	}{
		{"2 members: the report passes alone; exit and ban, no fine", []string{"alice", "bob"}, nil, nil, ProposalPassed, 0, "", 2, 100},
		{"3 members: the reporter alone is not enough", []string{"alice", "bob", "carol"}, nil, ErrNotPassed, ProposalOpen, 0, "alice", 1, 0},
		{"3 members: both others, fine to the reporter who leads", []string{"alice", "bob", "carol"}, []string{"carol"}, nil, ProposalPassed, 60, "bob", 2, 40},
		{"3 members: the other against fails it", []string{"alice", "bob", "carol"}, []string{"-carol"}, ErrProposalClosed, ProposalFailed, 0, "alice", 1, 0},
		{"5 members: the seed's two votes no longer suffice", seven[:5], []string{"dave"}, ErrNotPassed, ProposalOpen, 0, "alice", 1, 0},
		{"5 members: 3 of the 4 others", seven[:5], []string{"carol", "dave"}, nil, ProposalPassed, 60, "bob", 2, 40},
		{"7 members: 2 colluders do not pass", seven, []string{"carol"}, ErrNotPassed, ProposalOpen, 0, "alice", 1, 0},
		{"7 members: 3 of 6 do not pass", seven, []string{"carol", "dave"}, ErrNotPassed, ProposalOpen, 0, "alice", 1, 0},
		{"7 members: 4 of the 6 others pass", seven, []string{"carol", "dave", "eve"}, nil, ProposalPassed, 60, "bob", 2, 40},
		{"7 members: two against leave it open", seven, []string{"-carol", "-dave"}, ErrNotPassed, ProposalOpen, 0, "alice", 1, 0},
		{"7 members: three against fail it early", seven, []string{"-carol", "-dave", "-eve"}, ErrProposalClosed, ProposalFailed, 0, "alice", 1, 0},
		{"7 members: abstentions are not in favour", seven, []string{"carol", "~dave", "~eve", "~frank"}, ErrProposalClosed, ProposalFailed, 0, "alice", 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel(tc.members...)
			pid, err := h.propose("bob", protocol.ProposalPunish, h.punishment("alice"))
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range tc.votes {
				if err := h.vote(pid, v); err != nil {
					t.Fatalf("vote %s: %v", v, err)
				}
			}
			p, _ := GetProposal(h.st, h.ch, pid)
			if got := p.Standing(h.now); got != tc.standing {
				t.Fatalf("standing %s, want %s (%d for, %d against, %d abstain, %d needed of %d)",
					got, tc.standing, p.For, p.Against, p.Abstain, p.VotesNeeded(), p.ElectorateSize())
			}
			rc, err := h.call("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			wantErr(t, err, tc.want)
			ch := h.chanRec()
			var wantLeader protocol.Address
			if tc.leader != "" {
				wantLeader = h.addr(tc.leader)
			}
			if ch.Leader != wantLeader || ch.Epoch != tc.epoch {
				t.Fatalf("leader %s epoch %d, want %s epoch %d", ch.Leader, ch.Epoch, wantLeader, tc.epoch)
			}
			if err != nil {
				// Nobody's money moved, the target is still a member.
				for _, n := range tc.members {
					m, err := GetMember(h.st, h.ch, h.addr(n))
					if err != nil || m.Locked != 100 {
						t.Fatalf("%s after a failed case: %+v, %v", n, m, err)
					}
					if got := GetAccount(h.st, h.params(), h.addr(n)).Balance; got != initial-100 {
						t.Fatalf("%s balance %d after a failed case", n, got)
					}
				}
				return
			}
			if _, err := GetMember(h.st, h.ch, h.addr("alice")); !errorsIs(err, ErrNotMember) {
				t.Fatalf("target still a member: %v", err)
			}
			if got := GetAccount(h.st, h.params(), h.addr("alice")).Balance; got != initial-100+tc.targetBack {
				t.Fatalf("target balance %d, want %d", got, initial-100+tc.targetBack)
			}
			if got := GetAccount(h.st, h.params(), h.addr("bob")).Balance; got != initial-100+tc.fine {
				t.Fatalf("reporter balance %d, want %d", got, initial-100+tc.fine)
			}
			if ban := GetBan(h.st, h.ch, h.addr("alice")); ban != h.now+DefaultBanDuration.Milliseconds() {
				t.Fatalf("ban until %d, want %d", ban, h.now+DefaultBanDuration.Milliseconds())
			}
			var punished bool
			for _, ev := range rc.Events {
				if ev.Kind == EventMemberPunished && ev.Member == h.addr("alice") && ev.Other == h.addr("bob") && ev.Amount == tc.fine {
					punished = true
				}
			}
			if !punished {
				t.Fatalf("no punished event in %+v", rc.Events)
			}
			// Banned for 5 minutes of chain time, then welcome back.
			h.must("alice", &Stake{Channel: h.ch, Amount: 100})
			if _, err := h.call("alice", &Join{Channel: h.ch}); !errorsIs(err, ErrBanned) {
				t.Fatalf("rejoin during ban: %v", err)
			}
			h.advance(DefaultBanDuration)
			h.must("alice", &Join{Channel: h.ch})
		})
	}
}

// TestPunishElectorate: the electorate is the members other than the
// target as they stood at filing; nobody can be added to it or left out
// of it to move the bar.
func TestPunishElectorate(t *testing.T) {
	tests := []struct {
		name string
		run  func(h *harness, pid uint64)
	}{
		{"the target cannot vote", func(h *harness, pid uint64) {
			wantErr(h.t, h.vote(pid, "-alice"), ErrNotEligible)
		}},
		{"a member who joined after filing cannot vote and does not change the bar", func(h *harness, pid uint64) {
			for _, n := range []string{"henry", "ivy"} {
				h.must(n, &Stake{Channel: h.ch, Amount: 100})
				h.must(n, &Join{Channel: h.ch})
				wantErr(h.t, h.vote(pid, n), ErrNotEligible)
			}
			h.must("carol", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			h.must("dave", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			_, err := h.call("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			wantErr(h.t, err, ErrNotPassed) // 3 of 6, with 9 members now
			h.must("eve", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			h.must("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
		}},
		{"offline members still count: the online colluders cannot pass it alone", func(h *harness, pid uint64) {
			// Only bob, carol and the target keep their heartbeats: the
			// others are offline, not out of the count.
			h.advance(DefaultHeartbeatTTL + time.Second)
			h.keepAll("alice", "bob", "carol")
			h.must("carol", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			_, err := h.call("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			wantErr(h.t, err, ErrNotPassed)
			// An offline member's vote still counts when it comes.
			h.must("dave", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			h.must("frank", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			h.must("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
		}},
		{"a vote is final", func(h *harness, pid uint64) {
			h.must("carol", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteAgainst})
			wantErr(h.t, h.vote(pid, "carol"), ErrAlreadyVoted)
			wantErr(h.t, h.vote(pid, "bob"), ErrAlreadyVoted) // filing was bob's vote
		}},
		{"a batch of votes is taken whole though its first votes decided the case", func(h *harness, pid uint64) {
			var vs []protocol.Vote
			for _, n := range []string{"carol", "dave", "eve", "frank"} {
				v := protocol.Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteAgainst}
				v.Sign(h.key(n))
				vs = append(vs, v)
			}
			rc := h.must("carol", &SubmitVotes{Channel: h.ch, Proposal: pid, Votes: vs})
			p, _ := GetProposal(h.st, h.ch, pid)
			if p.Status != ProposalFailed || p.Against != 4 {
				h.t.Fatalf("after the batch: %s, %d against", p.Status, p.Against)
			}
			if last := rc.Events[len(rc.Events)-1]; last.Kind != EventProposalFailed || last.Proposal != pid || last.Member != h.addr("carol") {
				h.t.Fatalf("last event %+v", last)
			}
			wantErr(h.t, h.vote(pid, "grace"), ErrProposalClosed)
		}},
		{"signed votes carried by anyone count the same", func(h *harness, pid uint64) {
			var vs []protocol.Vote
			for _, n := range []string{"carol", "dave", "eve"} {
				v := protocol.Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor}
				v.Sign(h.key(n))
				vs = append(vs, v)
			}
			target := protocol.Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteAgainst}
			target.Sign(h.key("alice"))
			_, err := h.call("mallory", &SubmitVotes{Channel: h.ch, Proposal: pid, Votes: append(vs, target)})
			wantErr(h.t, err, ErrNotEligible)
			h.must("mallory", &SubmitVotes{Channel: h.ch, Proposal: pid, Votes: vs})
			h.must("mallory", &ExecuteProposal{Channel: h.ch, Proposal: pid})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel(seven...)
			pid, err := h.propose("bob", protocol.ProposalPunish, h.punishment("alice"))
			if err != nil {
				t.Fatal(err)
			}
			p, _ := GetProposal(h.st, h.ch, pid)
			if len(p.Voters) != 6 || p.VotesNeeded() != 4 || p.For != 1 || p.DeadlineMs != h.now+DefaultVoteWindow.Milliseconds() {
				t.Fatalf("proposal %+v needs %d", p, p.VotesNeeded())
			}
			for _, v := range p.Voters {
				if v == h.addr("alice") {
					t.Fatal("the target is in the electorate")
				}
			}
			tc.run(h, pid)
		})
	}
}

// TestPunishDeadline: voting closes DefaultVoteWindow after filing; a case without
// the votes by then has failed.
func TestPunishDeadline(t *testing.T) {
	h := newHarness(t)
	h.channel(seven...)
	pid, err := h.propose("bob", protocol.ProposalPunish, h.punishment("alice"))
	if err != nil {
		t.Fatal(err)
	}
	h.must("carol", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
	h.must("dave", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
	h.advance(DefaultVoteWindow)
	wantErr(t, h.vote(pid, "eve"), ErrDeadlinePassed)
	_, err = h.call("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
	wantErr(t, err, ErrNotPassed)
	p, _ := GetProposal(h.st, h.ch, pid)
	if p.Standing(h.now) != ProposalFailed || p.For != 3 {
		t.Fatalf("after the deadline: %s with %d for", p.Standing(h.now), p.For)
	}
	if ch := h.chanRec(); ch.Leader != h.addr("alice") || ch.Members != 7 {
		t.Fatalf("leader %s, %d members", ch.Leader, ch.Members)
	}

	// Votes in time pass it; execution may come later.
	h2 := newHarness(t)
	h2.channel(seven...)
	pid, err = h2.propose("bob", protocol.ProposalPunish, h2.punishment("alice"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"carol", "dave", "eve"} {
		h2.must(n, &Vote{Channel: h2.ch, Proposal: pid, Option: protocol.VoteFor})
	}
	h2.advance(DefaultVoteWindow)
	h2.must("bob", &ExecuteProposal{Channel: h2.ch, Proposal: pid})
}

// TestPunishOneCase: one case per offence (target, epoch, height).
func TestPunishOneCase(t *testing.T) {
	h := newHarness(t)
	h.channel(seven...)
	pid, err := h.propose("bob", protocol.ProposalPunish, h.punishment("alice"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.propose("carol", protocol.ProposalPunish, h.punishment("alice"))
	wantErr(t, err, ErrDuplicateCase)
	if want := fmt.Sprintf("proposal %d (open)", pid); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %q", err, want)
	}
	// The same offence with other evidence bytes (another reason) is the
	// same case.
	pu := h.punishment("alice")
	pu.Reason = "other words"
	_, err = h.propose("dave", protocol.ProposalPunish, pu)
	wantErr(t, err, ErrDuplicateCase)
	// Another height is another offence.
	honest := protocol.Result{Status: protocol.StatusOK, GasUsed: 10, ChangeSet: protocol.ChangeSet{}.Hash()}
	claimed := honest
	claimed.GasUsed = 11
	b, _ := h.batch("alice", "carol", 8, claimed)
	other := &protocol.Punish{Target: h.addr("alice"), Height: 8, Batch: b.Bytes(), Honest: honest, Reason: "result differs"}
	if _, err := h.propose("carol", protocol.ProposalPunish, other); err != nil {
		t.Fatal(err)
	}
	// A failed case is not filed again.
	for _, n := range []string{"-carol", "-dave", "-eve"} {
		if err := h.vote(pid, n); err != nil {
			t.Fatal(err)
		}
	}
	_, err = h.propose("frank", protocol.ProposalPunish, h.punishment("alice"))
	wantErr(t, err, ErrDuplicateCase)
	if !strings.Contains(err.Error(), "(failed)") {
		t.Fatalf("error %q does not say the case failed", err)
	}
	// A case whose voting closed undecided may be filed anew, once: the
	// new case is the one to vote on.
	h.advance(DefaultVoteWindow)
	second, err := h.propose("frank", protocol.ProposalPunish, other)
	if err != nil {
		t.Fatalf("refiling an expired case: %v", err)
	}
	_, err = h.propose("grace", protocol.ProposalPunish, other)
	wantErr(t, err, ErrDuplicateCase)
	if want := fmt.Sprintf("proposal %d (open)", second); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %q", err, want)
	}
	_, err = h.propose("frank", protocol.ProposalPunish, h.punishment("alice"))
	wantErr(t, err, ErrDuplicateCase) // voted down stays decided
}

// TestFineAtMostMinStake: a channel cannot promise a fine its members'
// collateral may not cover.
func TestFineAtMostMinStake(t *testing.T) {
	h := newHarness(t)
	_, err := h.call("creator", &CreateChannel{Contract: "chat", Code: testCode, Config: ChannelConfig{MinStake: 50, Fine: 51}})
	wantErr(t, err, ErrMalformed)
	h.must("creator", &CreateChannel{Contract: "chat", Code: testCode, Config: ChannelConfig{MinStake: 50, Fine: 50}})
}

func TestPunishPoolCollateral(t *testing.T) {
	h := newHarness(t)
	h.channel("bob", "carol")
	h.must("alice", &Deposit{Amount: 500})
	h.must("alice", &Join{Channel: h.ch, UsePool: true})
	h.advance(DefaultHeartbeatTTL + time.Second)
	h.keepAll("carol")
	h.must("alice", &ClaimLeader{Channel: h.ch, Epoch: 1})
	pid, err := h.propose("bob", protocol.ProposalPunish, h.punishment("alice"))
	if err != nil {
		t.Fatal(err)
	}
	h.must("carol", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
	h.must("carol", &ExecuteProposal{Channel: h.ch, Proposal: pid})
	if a := GetAccount(h.st, h.params(), h.addr("alice")); a.PoolDeposit != 440 || a.PoolLocked != 0 {
		t.Fatalf("pool after fine %+v", a)
	}
}

func TestCensorship(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(h *harness, tx *protocol.SignedTx) *protocol.Censorship
		answer func(h *harness, pid uint64, tx *protocol.SignedTx) error
		after  time.Duration // chain time passed before execution
		want   error         // of the answer, or of execution when answer is nil
		closed bool
	}{
		{"unanswered: closes the channel", nil, nil, DefaultCensorshipWindow + time.Millisecond, nil, true},
		{"before the deadline", nil, nil, DefaultCensorshipWindow - 10*time.Millisecond, ErrNotPassed, false},
		{"answered with a batch holding the tx", nil, func(h *harness, pid uint64, tx *protocol.SignedTx) error {
			b := &protocol.Batch{Channel: h.ch, Epoch: 1, FirstHeight: 4, Entries: []protocol.Entry{{Kind: protocol.EntryCall, Call: tx}}, Results: []protocol.Result{{}}}
			b.Sign(h.key("alice"))
			_, err := h.call("alice", &ProveInclusion{Channel: h.ch, Proposal: pid, Batch: b.Bytes()})
			return err
		}, DefaultCensorshipWindow + time.Millisecond, nil, false},
		{"answered with another tx", nil, func(h *harness, pid uint64, tx *protocol.SignedTx) error {
			b, _ := h.batch("alice", "bob", 4, protocol.Result{})
			_, err := h.call("alice", &ProveInclusion{Channel: h.ch, Proposal: pid, Batch: b.Bytes()})
			return err
		}, 0, ErrBadProof, false},
		{"answered with a batch signed by another", nil, func(h *harness, pid uint64, tx *protocol.SignedTx) error {
			b := &protocol.Batch{Channel: h.ch, Epoch: 1, FirstHeight: 4, Entries: []protocol.Entry{{Kind: protocol.EntryCall, Call: tx}}, Results: []protocol.Result{{}}}
			b.Sign(h.key("bob"))
			_, err := h.call("alice", &ProveInclusion{Channel: h.ch, Proposal: pid, Batch: b.Bytes()})
			return err
		}, 0, ErrBadProof, false},
		{"answered too late", nil, func(h *harness, pid uint64, tx *protocol.SignedTx) error {
			h.advance(DefaultCensorshipWindow + time.Millisecond)
			b := &protocol.Batch{Channel: h.ch, Epoch: 1, FirstHeight: 4, Entries: []protocol.Entry{{Kind: protocol.EntryCall, Call: tx}}, Results: []protocol.Result{{}}}
			b.Sign(h.key("alice"))
			_, err := h.call("alice", &ProveInclusion{Channel: h.ch, Proposal: pid, Batch: b.Bytes()})
			return err
		}, 0, ErrDeadlinePassed, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob")
			tx := protocol.SignTx(h.key("bob"), protocol.Tx{Channel: h.ch, Nonce: 1, Function: "chat::send"})
			pid, err := h.propose("bob", protocol.ProposalCensorship, &protocol.Censorship{Accused: h.addr("alice"), Tx: *tx})
			if err != nil {
				t.Fatal(err)
			}
			if tc.answer != nil {
				if err := tc.answer(h, pid, tx); err != nil || tc.want != nil {
					wantErr(t, err, tc.want)
					return
				}
			}
			h.advance(tc.after)
			_, err = h.call("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			if tc.answer != nil {
				wantErr(t, err, ErrProposalClosed)
			} else {
				wantErr(t, err, tc.want)
			}
			ch, _ := GetChannel(h.st, h.ch)
			if ch.Closed != tc.closed {
				t.Fatalf("closed %v, want %v", ch.Closed, tc.closed)
			}
			if acc := GetAccount(h.st, h.params(), h.addr("alice")); tc.closed && acc.Balance != DefaultParams().InitialBalance-100 {
				t.Fatalf("leader was fined: %+v", acc)
			}
		})
	}
}

func TestCensorshipComplaint(t *testing.T) {
	tests := []struct {
		name string
		tx   func(h *harness) *protocol.SignedTx
		by   string
		acc  string
		want error
	}{
		{"own tx against the leader", func(h *harness) *protocol.SignedTx {
			return protocol.SignTx(h.key("bob"), protocol.Tx{Channel: h.ch, Nonce: 1, Function: "chat::send"})
		}, "bob", "alice", nil},
		{"someone else's tx", func(h *harness) *protocol.SignedTx {
			return protocol.SignTx(h.key("carol"), protocol.Tx{Channel: h.ch, Nonce: 1, Function: "chat::send"})
		}, "bob", "alice", ErrBadComplaint},
		{"tx for another channel", func(h *harness) *protocol.SignedTx {
			return protocol.SignTx(h.key("bob"), protocol.Tx{Channel: protocol.ChannelID{1}, Nonce: 1, Function: "chat::send"})
		}, "bob", "alice", ErrBadComplaint},
		{"accused is not the leader", func(h *harness) *protocol.SignedTx {
			return protocol.SignTx(h.key("bob"), protocol.Tx{Channel: h.ch, Nonce: 1, Function: "chat::send"})
		}, "bob", "carol", ErrBadComplaint},
		{"the leader accuses itself", func(h *harness) *protocol.SignedTx {
			return protocol.SignTx(h.key("alice"), protocol.Tx{Channel: h.ch, Nonce: 1, Function: "chat::send"})
		}, "alice", "alice", ErrBadComplaint},
		{"forged tx", func(h *harness) *protocol.SignedTx {
			tx := protocol.SignTx(h.key("bob"), protocol.Tx{Channel: h.ch, Nonce: 1, Function: "chat::send"})
			tx.Tx.Nonce = 2
			return tx
		}, "bob", "alice", ErrBadComplaint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob", "carol")
			_, err := h.propose(tc.by, protocol.ProposalCensorship, &protocol.Censorship{Accused: h.addr(tc.acc), Tx: *tc.tx(h)})
			wantErr(t, err, tc.want)
		})
	}
}

// TestFalseReportCooldown: a reporter whose case the members vote down may
// not report again in that channel for DefaultReportCooldown; a case that fails
// only for want of votes costs nothing, and other reporters are not held.
func TestFalseReportCooldown(t *testing.T) {
	second := func(h *harness) *protocol.Punish {
		p := h.punishment("alice")
		b, _ := protocol.DecodeBatch(p.Batch)
		b.FirstHeight, p.Height = 8, 8
		b.Sign(h.key("alice"))
		p.Batch = b.Bytes()
		return p
	}
	t.Run("voted down", func(t *testing.T) {
		h := newHarness(t)
		h.channel("alice", "bob", "carol", "dave")
		pid, err := h.propose("bob", protocol.ProposalPunish, h.punishment("alice"))
		if err != nil {
			t.Fatal(err)
		}
		if err := h.vote(pid, "-carol"); err != nil {
			t.Fatal(err)
		}
		if err := h.vote(pid, "-dave"); err != nil {
			t.Fatal(err)
		}
		if p, _ := GetProposal(h.st, h.ch, pid); p.Status != ProposalFailed {
			t.Fatalf("case is %s", p.Status)
		}
		_, err = h.propose("bob", protocol.ProposalPunish, second(h))
		wantErr(t, err, ErrReportCooldown)
		if _, err := h.propose("carol", protocol.ProposalPunish, second(h)); err != nil {
			t.Fatalf("another member's report: %v", err)
		}
		h.advance(DefaultReportCooldown)
		// Carol's case expired undecided meanwhile: bob may file anew.
		if _, err := h.propose("bob", protocol.ProposalPunish, second(h)); err != nil {
			t.Fatalf("report after the cooldown: %v", err)
		}
	})
	t.Run("failed for want of votes", func(t *testing.T) {
		h := newHarness(t)
		h.channel("alice", "bob", "carol", "dave")
		pid, err := h.propose("bob", protocol.ProposalPunish, h.punishment("alice"))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"~carol", "~dave"} {
			if err := h.vote(pid, v); err != nil {
				t.Fatal(err)
			}
		}
		if p, _ := GetProposal(h.st, h.ch, pid); p.Status != ProposalFailed {
			t.Fatalf("case is %s", p.Status)
		}
		if _, err := h.propose("bob", protocol.ProposalPunish, second(h)); err != nil {
			t.Fatalf("report after an undecided case: %v", err)
		}
	})
}
