package contract

import (
	"testing"

	"github.com/scraft/scraft/protocol"
)

// equivocation builds an equivocation payload against target: two batches
// it signed for height 7 of epoch 1, the second with a later timestamp
// (same entries and results: the bodies differ all the same).
func (h *harness) equivocation(target string) *protocol.Punish {
	res := protocol.Result{Status: protocol.StatusOK, GasUsed: 10, ChangeSet: protocol.ChangeSet{}.Hash()}
	a, _ := h.batch(target, "bob", 7, res)
	b, _ := protocol.DecodeBatch(a.Bytes())
	b.TimestampMs++
	b.Sign(h.key(target))
	return &protocol.Punish{Target: h.addr(target), Height: 7, Batch: a.Bytes(), Conflict: b.Bytes(), Reason: "equivocation"}
}

// TestPunishEquivocationEvidence: the chain takes an equivocation case
// only with two different bodies the target signed for one height of one
// epoch, whatever else the payload holds.
func TestPunishEquivocationEvidence(t *testing.T) {
	resign := func(h *harness, raw []byte, who string, change func(b *protocol.Batch)) []byte {
		b, _ := protocol.DecodeBatch(raw)
		change(b)
		b.Sign(h.key(who))
		return b.Bytes()
	}
	tests := []struct {
		name   string
		mutate func(h *harness, p *protocol.Punish)
		want   error
	}{
		{"valid", nil, nil},
		{"the same batch twice", func(h *harness, p *protocol.Punish) { p.Conflict = p.Batch }, ErrBadEvidence},
		{"the same body signed again", func(h *harness, p *protocol.Punish) {
			p.Conflict = resign(h, p.Batch, "alice", func(*protocol.Batch) {})
		}, ErrBadEvidence},
		{"another epoch", func(h *harness, p *protocol.Punish) {
			p.Conflict = resign(h, p.Conflict, "alice", func(b *protocol.Batch) { b.Epoch = 2 })
		}, ErrBadEvidence},
		{"the conflict does not cover the height", func(h *harness, p *protocol.Punish) {
			p.Conflict = resign(h, p.Conflict, "alice", func(b *protocol.Batch) { b.FirstHeight = 8 })
		}, ErrBadEvidence},
		{"the conflict signed by another member", func(h *harness, p *protocol.Punish) {
			p.Conflict = resign(h, p.Conflict, "carol", func(*protocol.Batch) {})
		}, ErrBadEvidence},
		{"the conflict's signature forged", func(h *harness, p *protocol.Punish) {
			b, _ := protocol.DecodeBatch(p.Conflict)
			b.TimestampMs++
			p.Conflict = b.Bytes()
		}, ErrBadEvidence},
		{"the conflict for another channel", func(h *harness, p *protocol.Punish) {
			p.Conflict = resign(h, p.Conflict, "alice", func(b *protocol.Batch) { b.Channel = protocol.ChannelID{9} })
		}, ErrBadEvidence},
		{"the conflict not decodable", func(h *harness, p *protocol.Punish) { p.Conflict = []byte{1, 2, 3} }, ErrBadEvidence},
		{"the target reports itself", nil, ErrBadEvidence},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob", "carol")
			p := h.equivocation("alice")
			if tc.mutate != nil {
				tc.mutate(h, p)
			}
			by := "bob"
			if tc.name == "the target reports itself" {
				by = "alice"
			}
			_, err := h.propose(by, protocol.ProposalPunish, p)
			wantErr(t, err, tc.want)
		})
	}
}

// TestPunishEquivocationCase: an equivocation case is one case of its
// offence like any other (a second filing votes on it), passes with the
// vote rule and punishes the target.
func TestPunishEquivocationCase(t *testing.T) {
	h := newHarness(t)
	h.channel("alice", "bob", "carol", "dave")
	p := h.equivocation("alice")
	pid, err := h.propose("bob", protocol.ProposalPunish, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.propose("carol", protocol.ProposalPunish, p); !errorsIs(err, ErrDuplicateCase) {
		t.Fatalf("second filing: %v, want ErrDuplicateCase", err)
	}
	for _, v := range []string{"carol", "dave"} {
		if err := h.vote(pid, v); err != nil {
			t.Fatal(err)
		}
	}
	h.must("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
	if ch := h.chanRec(); ch.Members != 3 || ch.Leader != h.addr("bob") {
		t.Fatalf("after the punishment: leader %s, %d members", ch.Leader, ch.Members)
	}
	if _, err := h.call("alice", &Join{Channel: h.ch}); !errorsIs(err, ErrBanned) {
		t.Fatalf("the equivocating leader joins again: %v", err)
	}
}
