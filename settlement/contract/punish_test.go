package contract

import (
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

func TestPunishByChannelSize(t *testing.T) {
	initial := DefaultParams().InitialBalance
	tests := []struct {
		name       string
		members    []string
		votes      []string
		pool       bool // carol's collateral is pool money, not stake
		want       error
		fine       uint64
		leader     string // "" for none
		epoch      uint64
		targetBack uint64 // collateral returned to the target
	}{
		{"2 members: exit and ban, no fine", []string{"alice", "bob"}, []string{"bob"}, false, nil, 0, "", 2, 100},
		{"2 members: no vote yet", []string{"alice", "bob"}, nil, false, ErrNotPassed, 0, "alice", 1, 0},
		{"3 members: one vote is not enough", []string{"alice", "bob", "carol"}, []string{"bob"}, false, ErrNotPassed, 0, "alice", 1, 0},
		{"3 members: two votes, fine to reporter who leads", []string{"alice", "bob", "carol"}, []string{"bob", "carol"}, false, nil, 60, "bob", 2, 40},
		{"5 members: two votes suffice", []string{"alice", "bob", "carol", "dave", "eve"}, []string{"bob", "dave"}, false, nil, 60, "bob", 2, 40},
		{"3 members: against votes do not count", []string{"alice", "bob", "carol"}, []string{"bob", "-carol"}, false, ErrNotPassed, 0, "alice", 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel(tc.members...)
			pid, err := h.propose("bob", protocol.ProposalPunish, h.punishment("alice"))
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range tc.votes {
				opt := protocol.VoteFor
				if n[0] == '-' {
					n, opt = n[1:], protocol.VoteAgainst
				}
				h.must(n, &Vote{Channel: h.ch, Proposal: pid, Option: opt})
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
				return
			}
			if _, err := GetMember(h.st, h.ch, h.addr("alice")); !errorsIs(err, ErrNotMember) {
				t.Fatalf("target still a member: %v", err)
			}
			if got := GetAccount(h.st, h.m.Params(), h.addr("alice")).Balance; got != initial-100+tc.targetBack {
				t.Fatalf("target balance %d, want %d", got, initial-100+tc.targetBack)
			}
			if got := GetAccount(h.st, h.m.Params(), h.addr("bob")).Balance; got != initial-100+tc.fine {
				t.Fatalf("reporter balance %d, want %d", got, initial-100+tc.fine)
			}
			if ban := GetBan(h.st, h.ch, h.addr("alice")); ban != h.now+BanDuration.Milliseconds() {
				t.Fatalf("ban until %d, want %d", ban, h.now+BanDuration.Milliseconds())
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
			h.advance(BanDuration)
			h.must("alice", &Join{Channel: h.ch})
		})
	}
}

func TestPunishPoolCollateral(t *testing.T) {
	h := newHarness(t)
	h.channel("bob", "carol")
	h.must("alice", &Deposit{Amount: 500})
	h.must("alice", &Join{Channel: h.ch, UsePool: true})
	h.advance(HeartbeatTTL + time.Second)
	h.keepAll("carol")
	h.must("alice", &ClaimLeader{Channel: h.ch, Epoch: 1})
	pid, err := h.propose("bob", protocol.ProposalPunish, h.punishment("alice"))
	if err != nil {
		t.Fatal(err)
	}
	h.must("bob", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
	h.must("carol", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
	h.must("carol", &ExecuteProposal{Channel: h.ch, Proposal: pid})
	if a := GetAccount(h.st, h.m.Params(), h.addr("alice")); a.PoolDeposit != 440 || a.PoolLocked != 0 {
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
			if acc := GetAccount(h.st, h.m.Params(), h.addr("alice")); tc.closed && acc.Balance != DefaultParams().InitialBalance-100 {
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
