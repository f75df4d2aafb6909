package contract

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/scraft/scraft/delegate"
	"github.com/scraft/scraft/protocol"
)

// names returns m0, m1, … m(n−1).
func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("m%d", i)
	}
	return out
}

func (h *harness) addrs(ns ...string) []protocol.Address {
	out := make([]protocol.Address, len(ns))
	for i, n := range ns {
		out[i] = h.addr(n)
	}
	return out
}

func (h *harness) memberRec(name string) *Member {
	h.t.Helper()
	m, err := GetMember(h.st, h.ch, h.addr(name))
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

// wantCandidates checks the recorded candidate set, best ranked first.
func (h *harness) wantCandidates(ns ...string) {
	h.t.Helper()
	if got, want := h.chanRec().Candidates, h.addrs(ns...); !slices.Equal(got, want) {
		h.t.Fatalf("candidates %v, want %v (%v)", got, want, ns)
	}
}

// wantDelegation checks that name delegates to cand ("" for none) and
// that cand's count of delegators is n.
func (h *harness) wantDelegation(name, cand string, n uint32) {
	h.t.Helper()
	var want protocol.Address
	if cand != "" {
		want = h.addr(cand)
		if got := h.memberRec(cand).Delegators; got != n {
			h.t.Fatalf("%s has %d delegators, want %d", cand, got, n)
		}
	}
	if got := h.memberRec(name).DelegatedTo; got != want {
		h.t.Fatalf("%s delegates to %s, want %s", name, got, want)
	}
}

func (h *harness) delegateTo(name, cand string) error {
	var a protocol.Address
	if cand != "" {
		a = h.addr(cand)
	}
	_, err := h.call(name, &Delegate{Channel: h.ch, Candidate: a})
	return err
}

func hasEvent(evs []Event, k EventKind, member protocol.Address) bool {
	return slices.ContainsFunc(evs, func(e Event) bool { return e.Kind == k && e.Member == member })
}

// settle files a settlement from the settled height, has the named
// members vote for it and executes it.
func (h *harness) settle(voters ...string) {
	h.t.Helper()
	pid, err := h.propose(voters[0], protocol.ProposalSettlement, &protocol.Settlement{From: h.chanRec().SettledHeight + 1, To: h.chanRec().SettledHeight + 1})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, v := range voters {
		if err := h.vote(pid, v); err != nil {
			h.t.Fatalf("vote %s: %v", v, err)
		}
	}
	h.must(voters[0], &ExecuteProposal{Channel: h.ch, Proposal: pid})
}

// TestCandidatesFollowMembership: the recorded candidate set is
// delegate.Candidates of the members, brought up to date by every call on
// the channel, and the delegations follow it.
func TestCandidatesFollowMembership(t *testing.T) {
	t.Run("a sixth member brings candidates, best ranked first", func(t *testing.T) {
		h := newHarness(t)
		h.channel(names(5)...)
		h.wantCandidates()
		wantErr(t, h.delegateTo("m4", "m0"), ErrNotCandidate)
		h.must("m5", &Stake{Channel: h.ch, Amount: 100})
		rc := h.must("m5", &Join{Channel: h.ch})
		h.wantCandidates(names(5)...)
		if !slices.ContainsFunc(rc.Events, func(e Event) bool { return e.Kind == EventCandidates && e.Channel == h.ch }) {
			t.Fatalf("join events %+v", rc.Events)
		}
		// A call that changes nothing of the set writes nothing of it.
		if rc := h.must("m1", &KeepAlive{Channel: h.ch}); len(rc.Writes) != 1 || len(rc.Events) != 0 {
			t.Fatalf("keep_alive wrote %d records, events %+v", len(rc.Writes), rc.Events)
		}
	})
	t.Run("stake more than 10% above the weakest candidate takes its seat", func(t *testing.T) {
		h := newHarness(t)
		h.channel(names(7)...)
		if err := h.delegateTo("m5", "m4"); err != nil {
			t.Fatal(err)
		}
		if err := h.delegateTo("m6", "m0"); err != nil {
			t.Fatal(err)
		}
		h.must("m6", &Stake{Channel: h.ch, Amount: 10}) // 110: not more than 10% more
		h.wantCandidates(names(5)...)
		rc := h.must("m6", &Stake{Channel: h.ch, Amount: 1}) // 111
		h.wantCandidates("m6", "m0", "m1", "m2", "m3")
		// m4's delegator is left to choose again; m6, a candidate now,
		// no longer delegates.
		h.wantDelegation("m5", "", 0)
		h.wantDelegation("m6", "", 0)
		if m0, m4 := h.memberRec("m0"), h.memberRec("m4"); m0.Delegators != 0 || m4.Delegators != 0 {
			t.Fatalf("m0 has %d delegators, m4 %d", m0.Delegators, m4.Delegators)
		}
		if !hasEvent(rc.Events, EventDelegated, h.addr("m5")) || !hasEvent(rc.Events, EventDelegated, h.addr("m6")) {
			t.Fatalf("events %+v", rc.Events)
		}
		// The demoted one delegates like any member; the promoted one is
		// refused a delegation of its own.
		if err := h.delegateTo("m4", "m6"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, h.delegateTo("m6", "m0"), ErrNotEligible)
	})
	t.Run("a candidate whose heartbeat lapsed loses its seat at the next call", func(t *testing.T) {
		h := newHarness(t)
		all := names(7)
		h.channel(all...)
		if err := h.delegateTo("m6", "m1"); err != nil {
			t.Fatal(err)
		}
		h.advance(DefaultHeartbeatTTL - time.Second)
		others := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == "m1" })
		h.keepAll(others...)
		h.wantCandidates(names(5)...) // m1 is still within its TTL
		h.advance(2 * time.Second)
		h.keepAll("m0")
		// m5, the best ranked valid outsider (earliest joined of equal
		// stakes), fills the seat; m1's delegator is undelegated.
		h.wantCandidates("m0", "m2", "m3", "m4", "m5")
		h.wantDelegation("m6", "", 0)
		// m1 comes back: without the margin it does not take a seat back.
		h.keepAll("m1")
		h.wantCandidates("m0", "m2", "m3", "m4", "m5")
		wantErr(t, h.delegateTo("m6", "m1"), ErrNotCandidate)
	})
	t.Run("a candidate that asks to leave loses its seat at once", func(t *testing.T) {
		h := newHarness(t)
		h.channel(names(7)...)
		if err := h.delegateTo("m6", "m2"); err != nil {
			t.Fatal(err)
		}
		h.must("m2", &Leave{Channel: h.ch})
		h.wantCandidates("m0", "m1", "m3", "m4", "m5")
		h.wantDelegation("m6", "", 0)
	})
	t.Run("capacity shrinks with the members: the latest joined delegators move", func(t *testing.T) {
		h := newHarness(t)
		all := names(11)
		h.channel(all...)
		if c := delegate.Capacity(11); c != 2 {
			t.Fatalf("capacity of 11: %d", c)
		}
		for _, d := range []string{"m6", "m5"} { // m6 delegates first, m5 joined first
			if err := h.delegateTo(d, "m0"); err != nil {
				t.Fatal(err)
			}
		}
		h.must("m10", &Leave{Channel: h.ch})
		h.settle("m0", "m1", "m2", "m3", "m4", "m7") // m0's vote carries m5 and m6: 7, and m7: 8 of 11
		if n := h.chanRec().Members; n != 10 {
			t.Fatalf("%d members", n)
		}
		h.wantDelegation("m5", "m0", 1)
		h.wantDelegation("m6", "", 0)
	})
	t.Run("down to five members: no candidates, no delegations", func(t *testing.T) {
		h := newHarness(t)
		h.channel(names(6)...)
		if err := h.delegateTo("m5", "m0"); err != nil {
			t.Fatal(err)
		}
		h.must("m5", &Leave{Channel: h.ch})
		h.settle("m0", "m1", "m2", "m3")
		h.wantCandidates()
		for _, n := range names(5) {
			if m := h.memberRec(n); !m.DelegatedTo.IsZero() || m.Delegators != 0 {
				t.Fatalf("%s: %+v", n, m)
			}
		}
	})
	t.Run("a punished candidate's seat and delegators", func(t *testing.T) {
		h := newHarness(t)
		h.channel(names(8)...)
		if err := h.delegateTo("m7", "m0"); err != nil {
			t.Fatal(err)
		}
		pid, err := h.propose("m1", protocol.ProposalPunish, h.punishment("m0"))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"m2", "m3", "m4", "m5"} { // 5 of the 7 others
			if err := h.vote(pid, v); err != nil {
				t.Fatal(err)
			}
		}
		h.must("m1", &ExecuteProposal{Channel: h.ch, Proposal: pid})
		h.wantCandidates("m1", "m2", "m3", "m4", "m5")
		h.wantDelegation("m7", "", 0)
		if ch := h.chanRec(); ch.Leader != h.addr("m1") {
			t.Fatalf("leader %s, want the reporter", ch.Leader)
		}
	})
}

// TestDelegationCapacity27: 27 members give each candidate room for 5
// delegators (⌈27/5⌉ − 1; n/5 − 1 rounded down would strand 2 of the 22).
func TestDelegationCapacity27(t *testing.T) {
	h := newHarness(t)
	all := names(27)
	h.channel(all...)
	cands := all[:5]
	h.wantCandidates(cands...)
	for _, d := range all[5:10] {
		if err := h.delegateTo(d, "m0"); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, h.delegateTo("m10", "m0"), ErrNoCapacity)
	for i, d := range all[10:] {
		if err := h.delegateTo(d, cands[1+i%4]); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
	}
	var total uint32
	for _, c := range cands {
		n := h.memberRec(c).Delegators
		if n > delegate.Capacity(27) {
			t.Fatalf("%s holds %d", c, n)
		}
		total += n
	}
	if total != 22 {
		t.Fatalf("%d of 22 members placed", total)
	}
}

// TestLeadershipCandidates: in a channel with candidates only a candidate
// claims or is elected; a leader that is no longer one keeps its epoch
// until a candidate claims, which needs no attestations.
func TestLeadershipCandidates(t *testing.T) {
	h := newHarness(t)
	all := names(8)
	h.channel(all...)
	// m5 is no candidate: not by attestations, not after the leader lapsed.
	_, err := h.call("m5", &ClaimLeader{Channel: h.ch, Epoch: 1, Attestations: h.attest(1, "m5", all[1:]...)})
	wantErr(t, err, ErrNotCandidate)
	_, err = h.propose("m1", protocol.ProposalElection, &protocol.Election{Epoch: 1, Candidate: h.addr("m5")})
	wantErr(t, err, ErrNotCandidate)
	// An election of a candidate that stops being one cannot be executed.
	pid, err := h.propose("m1", protocol.ProposalElection, &protocol.Election{Epoch: 1, Candidate: h.addr("m4")})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range all[2:5] {
		if err := h.vote(pid, v); err != nil {
			t.Fatal(err)
		}
	}
	h.must("m4", &Leave{Channel: h.ch})
	_, err = h.call("m1", &ExecuteProposal{Channel: h.ch, Proposal: pid})
	wantErr(t, err, ErrNotCandidate)
	// A candidate's claim against a valid candidate leader needs its
	// attestations...
	_, err = h.call("m1", &ClaimLeader{Channel: h.ch, Epoch: 1})
	wantErr(t, err, ErrLeaderValid)
	// ...but not once the leader stopped being a candidate: it asked to
	// leave, and kept its epoch until now.
	h.must("m0", &Leave{Channel: h.ch})
	if ch := h.chanRec(); ch.Leader != h.addr("m0") || slices.Contains(ch.Candidates, h.addr("m0")) {
		t.Fatalf("leader %s, candidates %v", ch.Leader, ch.Candidates)
	}
	_, err = h.call("m7", &ClaimLeader{Channel: h.ch, Epoch: 1})
	wantErr(t, err, ErrNotCandidate)
	if rc := h.must("m1", &ClaimLeader{Channel: h.ch, Epoch: 1}); rc.Epoch != 2 {
		t.Fatalf("epoch %d", rc.Epoch)
	}
}

// TestPunishReporterLeadsOnlyAsCandidate: the reporter of a punishment in
// a channel with candidates becomes leader only when it is one once the
// target is out; else a leader target leaves the channel leaderless.
func TestPunishReporterLeadsOnlyAsCandidate(t *testing.T) {
	for _, tc := range []struct {
		reporter string
		leads    bool
	}{
		{"m5", true},  // fills the target's seat
		{"m7", false}, // m5 fills it; m7 is still no candidate
	} {
		t.Run(tc.reporter, func(t *testing.T) {
			h := newHarness(t)
			all := names(8)
			h.channel(all...)
			pid, err := h.propose(tc.reporter, protocol.ProposalPunish, h.punishment("m0"))
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range all[1:6] {
				if v != tc.reporter {
					if err := h.vote(pid, v); err != nil {
						t.Fatal(err)
					}
				}
			}
			h.must("m1", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			want := protocol.Address{}
			if tc.leads {
				want = h.addr(tc.reporter)
			}
			if ch := h.chanRec(); ch.Leader != want || ch.Epoch != 2 {
				t.Fatalf("leader %s epoch %d, want %s", ch.Leader, ch.Epoch, want)
			}
		})
	}
}

// crowd is a channel of n members, the first five its candidates, every
// other member delegating to candidate i%5 (at most Capacity(n) each).
func crowd(t *testing.T, n int) (*harness, []string) {
	h := newHarness(t)
	all := names(n)
	h.channel(all...)
	h.wantCandidates(all[:5]...)
	for i, d := range all[5:] {
		if err := h.delegateTo(d, all[i%5]); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
	}
	return h, all
}

// delegatorsOf returns the members of all delegating to cand, in order.
func (h *harness) delegatorsOf(all []string, cand string) []string {
	var out []string
	for _, n := range all {
		if h.memberRec(n).DelegatedTo == h.addr(cand) {
			out = append(out, n)
		}
	}
	return out
}

func (h *harness) signedVote(name string, pid uint64, opt protocol.VoteOption) protocol.Vote {
	v := protocol.Vote{Channel: h.ch, Proposal: pid, Option: opt}
	v.Sign(h.key(name))
	return v
}

// TestSettlementDelegatedWeight: with 100 members a settlement takes 7
// chain txs: the proposal, one submit_votes per candidate carrying its
// own vote and its delegators', and the execution. A silent delegator
// counts as its candidate voted; its own vote overrides.
func TestSettlementDelegatedWeight(t *testing.T) {
	type ballot struct {
		cand      protocol.VoteOption
		delegator protocol.VoteOption
		votes     int // how many of the candidate's 19 delegators vote
	}
	for_, against := protocol.VoteFor, protocol.VoteAgainst
	tests := []struct {
		name     string
		ballots  [5]ballot
		for_     uint32
		against  uint32
		passes   bool
		silentOK bool
	}{
		{"every delegator votes through its candidate",
			[5]ballot{{for_, for_, 19}, {for_, for_, 19}, {for_, for_, 19}, {for_, for_, 19}, {for_, for_, 19}}, 100, 0, true, false},
		{"a third of the delegators silent: their candidate carries them",
			[5]ballot{{for_, for_, 13}, {for_, for_, 13}, {for_, for_, 13}, {for_, for_, 12}, {for_, for_, 12}}, 100, 0, true, true},
		{"delegators' own votes override their candidate's",
			[5]ballot{{for_, against, 6}, {for_, against, 6}, {for_, against, 6}, {for_, against, 6}, {for_, against, 6}}, 70, 30, true, true},
		{"two candidates against, delegators silent: 60 of 100 is short",
			[5]ballot{{against, against, 0}, {against, against, 0}, {for_, for_, 0}, {for_, for_, 0}, {for_, for_, 0}}, 60, 40, false, true},
		{"seven delegators of a candidate against override it: 67 of 100",
			[5]ballot{{against, for_, 7}, {against, against, 0}, {for_, for_, 0}, {for_, for_, 0}, {for_, for_, 0}}, 67, 33, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, all := crowd(t, 100)
			cands := all[:5]
			start := h.height
			pid, err := h.propose("m0", protocol.ProposalSettlement, &protocol.Settlement{From: 1, To: 10})
			if err != nil {
				t.Fatal(err)
			}
			if p, _ := GetProposal(h.st, h.ch, pid); len(p.Voters) != 100 || p.For != 0 {
				t.Fatalf("proposal: %d voters, %d for", len(p.Voters), p.For)
			}
			for i, c := range cands {
				b := tc.ballots[i]
				votes := []protocol.Vote{h.signedVote(c, pid, b.cand)}
				for _, d := range h.delegatorsOf(all, c)[:b.votes] {
					votes = append(votes, h.signedVote(d, pid, b.delegator))
				}
				// Any member may carry the batch; here the candidate does.
				h.must(c, &SubmitVotes{Channel: h.ch, Proposal: pid, Votes: votes})
			}
			p, _ := GetProposal(h.st, h.ch, pid)
			if p.For != tc.for_ || p.Against != tc.against {
				t.Fatalf("tally %d for, %d against; want %d, %d", p.For, p.Against, tc.for_, tc.against)
			}
			_, err = h.call("m1", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			if !tc.passes {
				wantErr(t, err, ErrNotPassed)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if txs := h.height - start; txs > 7 {
				t.Fatalf("settlement took %d chain txs, want at most 7", txs)
			}
			if ch := h.chanRec(); ch.SettledHeight != 10 {
				t.Fatalf("settled height %d", ch.SettledHeight)
			}
			// The record shows only the votes cast; the weight is in the tally.
			if vs, _ := GetVotes(h.st, h.ch, pid); tc.silentOK != (len(vs) < 100) {
				t.Fatalf("%d votes on record", len(vs))
			}
		})
	}
}

// TestSettlementWeightFollowsDelegations: the tally is counted again at
// every vote call and at execution, from the delegations on record then;
// a delegator's vote after its candidate's overrides it.
func TestSettlementWeightFollowsDelegations(t *testing.T) {
	h, _ := crowd(t, 11) // capacity 2: m0 holds m5 and m10
	pid, err := h.propose("m1", protocol.ProposalSettlement, &protocol.Settlement{From: 1, To: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"m0", "m1", "m2", "m3", "m4"} {
		if err := h.vote(pid, v); err != nil {
			t.Fatal(err)
		}
	}
	if p, _ := GetProposal(h.st, h.ch, pid); p.For != 11 {
		t.Fatalf("%d for, want 11", p.For)
	}
	if err := h.vote(pid, "-m5"); err != nil {
		t.Fatal(err)
	}
	if p, _ := GetProposal(h.st, h.ch, pid); p.For != 10 || p.Against != 1 {
		t.Fatalf("%d for, %d against after m5's own vote", p.For, p.Against)
	}
	// A delegator that withdraws is silent for itself: 9 of 11 still pass.
	if err := h.delegateTo("m10", ""); err != nil {
		t.Fatal(err)
	}
	h.must("m0", &ExecuteProposal{Channel: h.ch, Proposal: pid})
	if p, _ := GetProposal(h.st, h.ch, pid); p.For != 9 || p.Status != ProposalExecuted {
		t.Fatalf("executed with %d for, status %s", p.For, p.Status)
	}
}

// TestPunishCountsOnlyOwnVotes: a punishment takes no delegated weight.
// Each member other than the target votes itself (its signed vote may be
// carried by its candidate), so colluding candidates cannot punish with
// their delegators' silence; the target's delegators count only by their
// own votes, and the target never votes.
func TestPunishCountsOnlyOwnVotes(t *testing.T) {
	h, _ := crowd(t, 12) // m5 and m10 delegate to m0, m6 and m11 to m1, …
	pid, err := h.propose("m1", protocol.ProposalPunish, h.punishment("m0"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := GetProposal(h.st, h.ch, pid)
	if len(p.Voters) != 11 || p.VotesNeeded() != 8 {
		t.Fatalf("%d voters, %d needed", len(p.Voters), p.VotesNeeded())
	}
	h.must("m2", &SubmitVotes{Channel: h.ch, Proposal: pid, Votes: []protocol.Vote{
		h.signedVote("m2", pid, protocol.VoteFor), h.signedVote("m3", pid, protocol.VoteFor), h.signedVote("m4", pid, protocol.VoteFor)}})
	if p, _ = GetProposal(h.st, h.ch, pid); p.For != 4 {
		t.Fatalf("%d for: the candidates' delegators were counted", p.For)
	}
	_, err = h.call("m1", &ExecuteProposal{Channel: h.ch, Proposal: pid})
	wantErr(t, err, ErrNotPassed)
	wantErr(t, h.vote(pid, "m0"), ErrNotEligible)
	h.must("m1", &SubmitVotes{Channel: h.ch, Proposal: pid, Votes: []protocol.Vote{
		h.signedVote("m6", pid, protocol.VoteFor), h.signedVote("m11", pid, protocol.VoteFor),
		h.signedVote("m5", pid, protocol.VoteFor), h.signedVote("m10", pid, protocol.VoteFor)}})
	h.must("m1", &ExecuteProposal{Channel: h.ch, Proposal: pid})
}

// TestSubmitVotesChecks: submit_votes checks every vote with
// delegate.VerifyVote and takes the batch whole.
func TestSubmitVotesChecks(t *testing.T) {
	h, _ := crowd(t, 7)
	pid, err := h.propose("m0", protocol.ProposalSettlement, &protocol.Settlement{From: 1, To: 2})
	if err != nil {
		t.Fatal(err)
	}
	good := h.signedVote("m5", pid, protocol.VoteFor)
	forged := h.signedVote("m6", pid, protocol.VoteFor)
	forged.Option = protocol.VoteAgainst
	other := protocol.Vote{Channel: h.ch, Proposal: pid + 1, Option: protocol.VoteFor}
	other.Sign(h.key("m6"))
	for _, bad := range []protocol.Vote{forged, other} {
		_, err := h.call("m0", &SubmitVotes{Channel: h.ch, Proposal: pid, Votes: []protocol.Vote{good, bad}})
		wantErr(t, err, ErrBadVote)
	}
	if vs, _ := GetVotes(h.st, h.ch, pid); len(vs) != 0 {
		t.Fatalf("a refused batch left %d votes", len(vs))
	}
}

// TestChannelRecordCandidatesCompat: a channel record without candidates
// keeps its bytes; one with them round-trips; an empty or repeated list
// written out is refused.
func TestChannelRecordCandidatesCompat(t *testing.T) {
	ch := Channel{ID: protocol.ChannelID{1}, Contract: "c", Members: 7}
	old := protocol.Marshal(&ch)
	ch.Candidates = []protocol.Address{{3}, {1}, {2}}
	full := protocol.Marshal(&ch)
	if !bytes.HasPrefix(full, old) || len(full) != len(old)+8+len(protocol.Hash{})+1+3*len(protocol.Address{}) {
		t.Fatalf("record with candidates: %d bytes, without %d", len(full), len(old))
	}
	var got Channel
	if err := protocol.Unmarshal(full, &got); err != nil || !slices.Equal(got.Candidates, ch.Candidates) {
		t.Fatalf("round trip: %v %v", err, got.Candidates)
	}
	if err := protocol.Unmarshal(old, &got); err != nil || got.Candidates != nil {
		t.Fatalf("old record: %v %v", err, got.Candidates)
	}
	withHash := ch
	withHash.Candidates = nil
	withHash.SettledStateHash = protocol.Hash{9}
	emptyList := append(protocol.Marshal(&withHash), 0)
	ch.Candidates = []protocol.Address{{1}, {1}}
	for _, bad := range [][]byte{emptyList, protocol.Marshal(&ch)} {
		if err := protocol.Unmarshal(bad, &got); err == nil {
			t.Fatalf("decoded %x", bad)
		}
	}
}

// TestPlanMovesPassTheChain: nodes that read the chain's records, plan
// with package delegate and send their Layout.Moves in order find every
// move accepted, and end where the plan says; the chain's recorded set is
// the plan's. Random channels, built and shaken through real calls.
func TestPlanMovesPassTheChain(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for trial := range 25 {
		h := newHarness(t)
		all := names(6 + r.IntN(40))
		h.channel(all...)
		rec := func() []delegate.Member {
			ms, err := GetMembers(h.st, h.ch)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]delegate.Member, len(ms))
			for i, m := range ms {
				out[i] = delegate.Member{Address: m.Address, Stake: m.Locked, JoinSeq: m.JoinSeq,
					Valid: m.ValidAt(h.now+1, DefaultHeartbeatTTL) && !m.Leaving(), DelegatedTo: m.DelegatedTo}
				for _, k := range r.Perm(5) {
					out[i].Prefs = append(out[i].Prefs, h.addr(all[k]))
				}
			}
			return out
		}
		replay := func(stage string) {
			t.Helper()
			ms := rec()
			l, err := delegate.Plan(ms, h.chanRec().Candidates)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.chanRec().Candidates; !slices.Equal(got, l.Candidates) {
				t.Fatalf("trial %d %s: chain's candidates %v, plan's %v", trial, stage, got, l.Candidates)
			}
			for _, mv := range l.Moves(ms) {
				if _, err := h.call(h.nameOf(all, mv.Delegator), &Delegate{Channel: h.ch, Candidate: mv.Candidate}); err != nil {
					t.Fatalf("trial %d %s: move %s → %s refused: %v", trial, stage, mv.Delegator, mv.Candidate, err)
				}
			}
			for _, m := range rec() {
				if want := l.CandidateOf(m.Address); m.DelegatedTo != want {
					t.Fatalf("trial %d %s: %s delegates to %s, plan says %s", trial, stage, m.Address, m.DelegatedTo, want)
				}
			}
		}
		replay("after joining")
		// Shake: stakes that may take seats, a candidate or two leaving.
		for range r.IntN(4) {
			h.must(all[r.IntN(len(all))], &Stake{Channel: h.ch, Amount: uint64(1 + r.IntN(40))})
		}
		if r.IntN(2) == 0 {
			cs := h.chanRec().Candidates
			h.must(h.nameOf(all, cs[r.IntN(len(cs))]), &Leave{Channel: h.ch})
		}
		replay("after stakes and leaves")
	}
}

// nameOf returns the name in all of address a.
func (h *harness) nameOf(all []string, a protocol.Address) string {
	h.t.Helper()
	for _, n := range all {
		if h.addr(n) == a {
			return n
		}
	}
	h.t.Fatalf("no member %s", a)
	return ""
}

// FuzzDecodeChannel: a channel record (it crosses the chain's gRPC API)
// decodes without a panic, and what decodes encodes to bytes that decode
// to the same record.
func FuzzDecodeChannel(f *testing.F) {
	for _, ch := range []*Channel{
		{ID: protocol.ChannelID{1}, Contract: "c", Members: 2},
		{ID: protocol.ChannelID{2}, Contract: "c", Members: 7, Candidates: []protocol.Address{{3}, {1}, {2}, {5}, {4}}},
		{ID: protocol.ChannelID{3}, Contract: "c", Config: ChannelConfig{VMVersion: 2}, SettledStateHash: protocol.Hash{9}},
	} {
		f.Add(protocol.Marshal(ch))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ch Channel
		if protocol.Unmarshal(b, &ch) != nil {
			return
		}
		once := protocol.Marshal(&ch)
		var back Channel
		if err := protocol.Unmarshal(once, &back); err != nil {
			t.Fatalf("re-encoding %x does not decode: %v", once, err)
		}
		if twice := protocol.Marshal(&back); !bytes.Equal(once, twice) {
			t.Fatalf("%x re-encodes as %x", once, twice)
		}
	})
}

// TestCandidatesAt: what a node computes from the records between calls
// is what the next call records.
func TestCandidatesAt(t *testing.T) {
	h := newHarness(t)
	all := names(7)
	h.channel(all...)
	h.advance(DefaultHeartbeatTTL - time.Second)
	h.keepAll("m0", "m2", "m3", "m4", "m5", "m6")
	h.advance(2 * time.Second)
	ms, err := GetMembers(h.st, h.ch)
	if err != nil {
		t.Fatal(err)
	}
	before := h.chanRec()
	got, err := CandidatesAt(before, ms, h.now+1, DefaultHeartbeatTTL) // the next call's time
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(got, before.Candidates) {
		t.Fatal("the lapse of m1 does not show")
	}
	h.keepAll("m6")
	if rec := h.chanRec().Candidates; !slices.Equal(got, rec) {
		t.Fatalf("computed %v, the call recorded %v", got, rec)
	}
}

// TestAttestationsCountCandidatesOnly: in a channel that runs through
// candidates only the candidates (the Raft voters, who hear the leader
// directly) attest to its unreachability; delegators' attestations,
// however many, do not make the 2/3, and 3 of the 4 other candidates do.
func TestAttestationsCountCandidatesOnly(t *testing.T) {
	h := newHarness(t)
	all := names(8)
	h.channel(all...)
	h.wantCandidates(all[:5]...)
	_, err := h.call("m1", &ClaimLeader{Channel: h.ch, Epoch: 1, Attestations: h.attest(1, "m1", "m1", "m5", "m6", "m7")})
	wantErr(t, err, ErrLeaderValid)
	_, err = h.call("m1", &ClaimLeader{Channel: h.ch, Epoch: 1, Attestations: h.attest(1, "m1", "m1", "m2", "m5", "m6", "m7")})
	wantErr(t, err, ErrLeaderValid)
	if rc := h.must("m1", &ClaimLeader{Channel: h.ch, Epoch: 1, Attestations: h.attest(1, "m1", "m1", "m2", "m3")}); rc.Epoch != 2 {
		t.Fatalf("epoch %d", rc.Epoch)
	}
}

// TestElectionCandidatesOnly: in a channel that runs through candidates
// only the candidates other than the leader vote on an election. A
// delegator never hears the leader itself, so every delegator of a
// channel would find a live leader gone: counted, they would pass a
// lone candidate's election against it.
func TestElectionCandidatesOnly(t *testing.T) {
	h := newHarness(t)
	all := names(8)
	h.channel(all...)
	h.wantCandidates(all[:5]...)
	pid, err := h.propose("m1", protocol.ProposalElection, &protocol.Election{Epoch: 1, Candidate: h.addr("m1")})
	if err != nil {
		t.Fatal(err)
	}
	p, err := GetProposal(h.st, h.ch, pid)
	if err != nil {
		t.Fatal(err)
	}
	if want := h.addrs("m1", "m2", "m3", "m4"); !sameAddrs(p.Voters, want) {
		t.Fatalf("electorate %v, want the candidates other than the leader %v", p.Voters, want)
	}
	for _, v := range all[5:] {
		wantErr(t, h.vote(pid, v), ErrNotEligible)
	}
	_, err = h.call("m1", &ExecuteProposal{Channel: h.ch, Proposal: pid})
	wantErr(t, err, ErrNotPassed)
	// 3 of the 4 (more than 2/3) elect.
	for _, v := range all[2:4] {
		if err := h.vote(pid, v); err != nil {
			t.Fatal(err)
		}
	}
	h.must("m2", &ExecuteProposal{Channel: h.ch, Proposal: pid})
	if ch := h.chanRec(); ch.Leader != h.addr("m1") || ch.Epoch != 2 {
		t.Fatalf("leader %s epoch %d after the election", ch.Leader, ch.Epoch)
	}
}

func sameAddrs(a, b []protocol.Address) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, protocol.Address.Compare)
	slices.SortFunc(b, protocol.Address.Compare)
	return slices.Equal(a, b)
}
