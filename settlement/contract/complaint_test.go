package contract

import (
	"bytes"
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
)

// TestComplaintAnswers files bob's complaint against the leader alice about
// his tx with nonce 3 and answers it with batches an attacker (the accused,
// or anyone carrying its answer) could make: only a batch signed by the
// accused, or by its epoch's recorded leader, for this channel, that holds
// the tx, another tx of bob's that consumed nonce 3, or bob's leave while
// he is leaving, answers it.
func TestComplaintAnswers(t *testing.T) {
	const nonce = 3
	call := func(tx *protocol.SignedTx) protocol.Entry { return protocol.Entry{Kind: protocol.EntryCall, Call: tx} }
	other := func(h *harness, sender string, n uint64) *protocol.SignedTx {
		return protocol.SignTx(h.key(sender), protocol.Tx{Channel: h.ch, Nonce: n, Function: "chat::send", Args: []byte("other")})
	}
	ok := protocol.Result{Status: protocol.StatusOK}
	tests := []struct {
		name  string
		batch func(h *harness, tx *protocol.SignedTx) (signer string, b *protocol.Batch)
		want  error
	}{
		{"inclusion", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			return "alice", &protocol.Batch{Entries: []protocol.Entry{call(tx)}, Results: []protocol.Result{ok}}
		}, nil},
		{"inclusion among other entries", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			return "alice", &protocol.Batch{Entries: []protocol.Entry{call(other(h, "carol", 1)), call(tx)}, Results: []protocol.Result{ok, {Status: protocol.StatusAbort}}}
		}, nil},
		{"nonce used by another tx", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			return "alice", &protocol.Batch{Entries: []protocol.Entry{call(other(h, "bob", nonce))}, Results: []protocol.Result{ok}}
		}, nil},
		{"nonce used by another tx that aborted", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			return "alice", &protocol.Batch{Entries: []protocol.Entry{call(other(h, "bob", nonce))}, Results: []protocol.Result{{Status: protocol.StatusAbort}}}
		}, nil},
		{"other tx refused for its nonce", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			return "alice", &protocol.Batch{Entries: []protocol.Entry{call(other(h, "bob", nonce))}, Results: []protocol.Result{{Status: protocol.StatusBadNonce}}}
		}, ErrBadProof},
		{"other tx refused as not a member", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			return "alice", &protocol.Batch{Entries: []protocol.Entry{call(other(h, "bob", nonce))}, Results: []protocol.Result{{Status: protocol.StatusNotMember}}}
		}, ErrBadProof},
		{"other tx with a different nonce", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			return "alice", &protocol.Batch{Entries: []protocol.Entry{call(other(h, "bob", nonce-1))}, Results: []protocol.Result{ok}}
		}, ErrBadProof},
		{"other sender with the same nonce", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			return "alice", &protocol.Batch{Entries: []protocol.Entry{call(other(h, "carol", nonce))}, Results: []protocol.Result{ok}}
		}, ErrBadProof},
		{"other tx forged in the complainer's name", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			forged := other(h, "alice", nonce)
			forged.Tx.Sender = h.addr("bob")
			return "alice", &protocol.Batch{Entries: []protocol.Entry{call(forged)}, Results: []protocol.Result{ok}}
		}, ErrBadProof},
		{"other tx for another channel", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			o := protocol.SignTx(h.key("bob"), protocol.Tx{Channel: protocol.ChannelID{7}, Nonce: nonce, Function: "chat::send"})
			return "alice", &protocol.Batch{Entries: []protocol.Entry{call(o)}, Results: []protocol.Result{ok}}
		}, ErrBadProof},
		{"batch of another channel", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			return "alice", &protocol.Batch{Channel: protocol.ChannelID{7}, Entries: []protocol.Entry{call(tx)}, Results: []protocol.Result{ok}}
		}, ErrBadProof},
		{"batch not signed by the accused", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			return "carol", &protocol.Batch{Entries: []protocol.Entry{call(tx)}, Results: []protocol.Result{ok}}
		}, ErrBadProof},
		{"batch signed by the complainer", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			return "bob", &protocol.Batch{Entries: []protocol.Entry{call(tx)}, Results: []protocol.Result{ok}}
		}, ErrBadProof},
		{"leave of the complainer, who is leaving", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			h.must("bob", &Leave{Channel: h.ch})
			return "alice", &protocol.Batch{Entries: []protocol.Entry{{Kind: protocol.EntryLeave, Leave: &protocol.MemberLeave{Member: h.addr("bob")}}}, Results: []protocol.Result{ok}}
		}, nil},
		{"leave of the complainer, who is not leaving", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			return "alice", &protocol.Batch{Entries: []protocol.Entry{{Kind: protocol.EntryLeave, Leave: &protocol.MemberLeave{Member: h.addr("bob")}}}, Results: []protocol.Result{ok}}
		}, ErrBadProof},
		{"refused leave of the complainer", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			h.must("bob", &Leave{Channel: h.ch})
			return "alice", &protocol.Batch{Entries: []protocol.Entry{{Kind: protocol.EntryLeave, Leave: &protocol.MemberLeave{Member: h.addr("bob")}}}, Results: []protocol.Result{{Status: protocol.StatusRejected}}}
		}, ErrBadProof},
		{"leave of another member", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			h.must("carol", &Leave{Channel: h.ch})
			return "alice", &protocol.Batch{Entries: []protocol.Entry{{Kind: protocol.EntryLeave, Leave: &protocol.MemberLeave{Member: h.addr("carol")}}}, Results: []protocol.Result{ok}}
		}, ErrBadProof},
		{"neither", func(h *harness, tx *protocol.SignedTx) (string, *protocol.Batch) {
			return "alice", &protocol.Batch{Entries: []protocol.Entry{call(other(h, "bob", nonce+1))}, Results: []protocol.Result{ok}}
		}, ErrBadProof},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob", "carol")
			tx := protocol.SignTx(h.key("bob"), protocol.Tx{Channel: h.ch, Nonce: nonce, Function: "chat::send", Args: []byte("censored")})
			pid, err := h.propose("bob", protocol.ProposalCensorship, &protocol.Censorship{Accused: h.addr("alice"), Tx: *tx})
			if err != nil {
				t.Fatal(err)
			}
			signer, b := tc.batch(h, tx)
			if b.Channel == (protocol.ChannelID{}) {
				b.Channel = h.ch
			}
			b.Epoch, b.FirstHeight = 1, 9
			b.Sign(h.key(signer))
			_, err = h.call("carol", &ProveInclusion{Channel: h.ch, Proposal: pid, Batch: b.Bytes()})
			wantErr(t, err, tc.want)
			p, _ := GetProposal(h.st, h.ch, pid)
			if refuted := p.Status == ProposalRefuted; refuted != (tc.want == nil) {
				t.Fatalf("complaint %s after answer error %v", p.Status, err)
			}
		})
	}
}

// TestComplaintForgedBatch answers with batches whose signature or key was
// tampered with.
func TestComplaintForgedBatch(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(h *harness, b *protocol.Batch)
	}{
		{"entry changed after signing", func(h *harness, b *protocol.Batch) {
			b.Entries[0].Call = protocol.SignTx(h.key("bob"), protocol.Tx{Channel: h.ch, Nonce: 3, Function: "chat::send"})
		}},
		{"leader's name on another's key", func(h *harness, b *protocol.Batch) {
			b.Sign(h.key("carol"))
			b.Leader = h.addr("alice")
		}},
		{"signature of another batch", func(h *harness, b *protocol.Batch) {
			o := *b
			o.FirstHeight++
			o.Sign(h.key("alice"))
			b.Signature = o.Signature
			b.FirstHeight = 100
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob", "carol")
			tx := protocol.SignTx(h.key("bob"), protocol.Tx{Channel: h.ch, Nonce: 2, Function: "chat::send"})
			pid, err := h.propose("bob", protocol.ProposalCensorship, &protocol.Censorship{Accused: h.addr("alice"), Tx: *tx})
			if err != nil {
				t.Fatal(err)
			}
			other := protocol.SignTx(h.key("carol"), protocol.Tx{Channel: h.ch, Nonce: 1, Function: "chat::send"})
			b := &protocol.Batch{Channel: h.ch, Epoch: 1, FirstHeight: 4, Entries: []protocol.Entry{{Kind: protocol.EntryCall, Call: other}}, Results: []protocol.Result{{}}}
			b.Sign(h.key("alice"))
			b.Entries[0].Call = tx // holds the tx, but the signature no longer covers it
			tc.tamper(h, b)
			_, err = h.call("alice", &ProveInclusion{Channel: h.ch, Proposal: pid, Batch: b.Bytes()})
			wantErr(t, err, ErrBadProof)
		})
	}
}

// TestComplaintEarlierEpoch: a tx ordered under the previous leader
// answers a complaint against the current one, by that epoch's leader's
// batch; a batch claiming an epoch its signer did not lead does not.
func TestComplaintEarlierEpoch(t *testing.T) {
	tests := []struct {
		name   string
		signer string
		epoch  uint64
		want   error
	}{
		{"previous epoch's leader", "alice", 1, nil},
		{"the accused in its own epoch", "bob", 2, nil},
		{"previous leader claiming the current epoch", "alice", 2, ErrBadProof},
		{"a member claiming the previous epoch", "carol", 1, ErrBadProof},
		{"a future epoch", "alice", 3, ErrBadProof},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob", "carol")
			h.must("bob", &ClaimLeader{Channel: h.ch, Epoch: 1, Attestations: h.attest(1, "bob", "bob", "carol")})
			if ch := h.chanRec(); ch.Leader != h.addr("bob") || ch.Epoch != 2 {
				t.Fatalf("leader %s epoch %d", ch.Leader, ch.Epoch)
			}
			tx := protocol.SignTx(h.key("carol"), protocol.Tx{Channel: h.ch, Nonce: 1, Function: "chat::send"})
			pid, err := h.propose("carol", protocol.ProposalCensorship, &protocol.Censorship{Accused: h.addr("bob"), Tx: *tx})
			if err != nil {
				t.Fatal(err)
			}
			b := &protocol.Batch{Channel: h.ch, Epoch: tc.epoch, FirstHeight: 4, Entries: []protocol.Entry{{Kind: protocol.EntryCall, Call: tx}}, Results: []protocol.Result{{}}}
			b.Sign(h.key(tc.signer))
			_, err = h.call("bob", &ProveInclusion{Channel: h.ch, Proposal: pid, Batch: b.Bytes()})
			wantErr(t, err, tc.want)
		})
	}
}

// TestComplaintLapses: a complaint whose complainer is no longer a member
// when it is executed fails instead of closing the channel.
func TestComplaintLapses(t *testing.T) {
	h := newHarness(t)
	h.channel("alice", "bob", "carol")
	tx := protocol.SignTx(h.key("bob"), protocol.Tx{Channel: h.ch, Nonce: 1, Function: "chat::send"})
	cid, err := h.propose("bob", protocol.ProposalCensorship, &protocol.Censorship{Accused: h.addr("alice"), Tx: *tx})
	if err != nil {
		t.Fatal(err)
	}
	h.must("bob", &Leave{Channel: h.ch})
	sid, err := h.propose("alice", protocol.ProposalSettlement, &protocol.Settlement{From: 1, To: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"bob", "carol"} {
		h.must(n, &Vote{Channel: h.ch, Proposal: sid, Option: protocol.VoteFor})
	}
	h.must("alice", &ExecuteProposal{Channel: h.ch, Proposal: sid})
	h.advance(DefaultCensorshipWindow + time.Millisecond)
	h.must("carol", &ExecuteProposal{Channel: h.ch, Proposal: cid})
	if h.chanRec().Closed {
		t.Fatal("a lapsed complaint closed the channel")
	}
	if p, _ := GetProposal(h.st, h.ch, cid); p.Status != ProposalFailed {
		t.Fatalf("complaint %s, want failed", p.Status)
	}
}

// TestUnansweredComplaintFinalState: the channel a complaint closes keeps
// its last settled state as the final one, and nobody is fined.
func TestUnansweredComplaintFinalState(t *testing.T) {
	h := newHarness(t)
	h.channel("alice", "bob", "carol")
	cs := mustCS(t, protocol.Change{Key: keyG, Kind: protocol.OpNew, New: []byte("settled")})
	sid, err := h.propose("alice", protocol.ProposalSettlement, &protocol.Settlement{From: 1, To: 5, ChangeSet: cs})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"bob", "carol"} {
		h.must(n, &Vote{Channel: h.ch, Proposal: sid, Option: protocol.VoteFor})
	}
	h.must("alice", &ExecuteProposal{Channel: h.ch, Proposal: sid})
	before, _ := GetSettledState(h.st, h.ch)
	balances := map[string]uint64{}
	for _, n := range []string{"alice", "bob", "carol"} {
		balances[n] = GetAccount(h.st, h.params(), h.addr(n)).Balance
	}

	tx := protocol.SignTx(h.key("bob"), protocol.Tx{Channel: h.ch, Nonce: 1, Function: "chat::send"})
	pid, err := h.propose("bob", protocol.ProposalCensorship, &protocol.Censorship{Accused: h.addr("alice"), Tx: *tx})
	if err != nil {
		t.Fatal(err)
	}
	h.advance(DefaultCensorshipWindow + time.Millisecond)
	h.must("carol", &ExecuteProposal{Channel: h.ch, Proposal: pid})
	ch := h.chanRec()
	if !ch.Closed || ch.SettledHeight != 5 {
		t.Fatalf("closed %v at settled height %d, want closed at 5", ch.Closed, ch.SettledHeight)
	}
	after, _ := GetSettledState(h.st, h.ch)
	if !bytes.Equal(protocol.Marshal(after), protocol.Marshal(before)) {
		t.Fatal("the settled state changed when the complaint closed the channel")
	}
	for _, n := range []string{"alice", "bob", "carol"} {
		if b := GetAccount(h.st, h.params(), h.addr(n)).Balance; b != balances[n] {
			t.Fatalf("%s's balance went from %d to %d", n, balances[n], b)
		}
		if _, err := GetMember(h.st, h.ch, h.addr(n)); err != nil {
			t.Fatalf("%s removed: %v", n, err)
		}
	}
}
