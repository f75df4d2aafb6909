package contract

import (
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
)

func TestClaimLeader(t *testing.T) {
	// Channel of alice (leader, epoch 1), bob, carol, dave, eve.
	tests := []struct {
		name  string
		run   func(h *harness) (string, *ClaimLeader)
		want  error
		epoch uint64
	}{
		{"no leader", func(h *harness) (string, *ClaimLeader) {
			h.must("alice", &Leave{Channel: h.ch})
			pid, _ := h.propose("bob", protocol.ProposalSettlement, &protocol.Settlement{From: 1, To: 1})
			for _, n := range []string{"alice", "bob", "carol", "dave"} {
				h.must(n, &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			}
			h.must("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			return "bob", &ClaimLeader{Epoch: 2}
		}, nil, 3},
		{"leader valid", func(h *harness) (string, *ClaimLeader) {
			return "bob", &ClaimLeader{Epoch: 1}
		}, ErrLeaderValid, 0},
		{"leader heartbeat 15 s old is still valid", func(h *harness) (string, *ClaimLeader) {
			h.keepAll("alice")
			h.advance(HeartbeatTTL - time.Millisecond)
			return "bob", &ClaimLeader{Epoch: 1}
		}, ErrLeaderValid, 0},
		{"leader heartbeat expired", func(h *harness) (string, *ClaimLeader) {
			h.advance(HeartbeatTTL + time.Millisecond)
			return "bob", &ClaimLeader{Epoch: 1}
		}, nil, 2},
		{"stale epoch", func(h *harness) (string, *ClaimLeader) {
			h.advance(HeartbeatTTL + time.Millisecond)
			return "bob", &ClaimLeader{Epoch: 0}
		}, ErrStaleEpoch, 0},
		{"already leader", func(h *harness) (string, *ClaimLeader) {
			return "alice", &ClaimLeader{Epoch: 1}
		}, ErrAlreadyLeader, 0},
		{"not a member", func(h *harness) (string, *ClaimLeader) {
			h.advance(HeartbeatTTL + time.Millisecond)
			return "mallory", &ClaimLeader{Epoch: 1}
		}, ErrNotMember, 0},
		{"fast path: 3 of 4 valid non-leaders", func(h *harness) (string, *ClaimLeader) {
			return "bob", &ClaimLeader{Epoch: 1, Attestations: h.attest(1, "bob", "bob", "carol", "dave")}
		}, nil, 2},
		{"fast path: exactly 2/3 is not more", func(h *harness) (string, *ClaimLeader) {
			// eve's heartbeat expires: 3 valid non-leaders, 2 attest.
			h.advance(HeartbeatTTL)
			h.keepAll("alice", "bob", "carol", "dave")
			h.keepAll("dave", "dave", "dave")
			h.advance(HeartbeatTTL - 10*time.Millisecond)
			h.keepAll("alice", "bob", "carol")
			return "bob", &ClaimLeader{Epoch: 1, Attestations: h.attest(1, "bob", "bob", "carol")}
		}, ErrLeaderValid, 0},
		{"fast path: expired attesters do not count", func(h *harness) (string, *ClaimLeader) {
			h.advance(HeartbeatTTL)
			h.keepAll("alice", "bob")
			return "bob", &ClaimLeader{Epoch: 1, Attestations: h.attest(1, "bob", "bob", "carol", "dave")}
		}, nil, 2},
		{"fast path: too few", func(h *harness) (string, *ClaimLeader) {
			return "bob", &ClaimLeader{Epoch: 1, Attestations: h.attest(1, "bob", "bob", "carol")}
		}, ErrLeaderValid, 0},
		{"fast path: the leader's attestation does not count", func(h *harness) (string, *ClaimLeader) {
			return "bob", &ClaimLeader{Epoch: 1, Attestations: h.attest(1, "bob", "alice", "bob", "carol")}
		}, ErrLeaderValid, 0},
		{"attestation for an old epoch", func(h *harness) (string, *ClaimLeader) {
			return "bob", &ClaimLeader{Epoch: 1, Attestations: h.attest(0, "bob", "bob", "carol", "dave")}
		}, ErrStaleEpoch, 0},
		{"attestation naming another claimant", func(h *harness) (string, *ClaimLeader) {
			return "bob", &ClaimLeader{Epoch: 1, Attestations: h.attest(1, "carol", "bob", "carol", "dave")}
		}, ErrBadAttestation, 0},
		{"attestation repeated", func(h *harness) (string, *ClaimLeader) {
			return "bob", &ClaimLeader{Epoch: 1, Attestations: h.attest(1, "bob", "bob", "carol", "carol")}
		}, ErrBadAttestation, 0},
		{"attestation forged", func(h *harness) (string, *ClaimLeader) {
			a := h.attest(1, "bob", "bob", "carol", "dave")
			a[2].Signature = append([]byte(nil), a[1].Signature...)
			return "bob", &ClaimLeader{Epoch: 1, Attestations: a}
		}, ErrBadAttestation, 0},
		{"attestation by a non-member", func(h *harness) (string, *ClaimLeader) {
			return "bob", &ClaimLeader{Epoch: 1, Attestations: h.attest(1, "bob", "bob", "carol", "mallory")}
		}, ErrBadAttestation, 0},
		{"leaving member cannot claim", func(h *harness) (string, *ClaimLeader) {
			h.must("bob", &Leave{Channel: h.ch})
			h.advance(HeartbeatTTL + time.Millisecond)
			return "bob", &ClaimLeader{Epoch: 1}
		}, ErrLeaving, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob", "carol", "dave", "eve")
			who, c := tc.run(h)
			c.Channel = h.ch
			before := h.chanRec()
			rc, err := h.call(who, c)
			wantErr(t, err, tc.want)
			ch := h.chanRec()
			if err != nil {
				if ch.Leader != before.Leader || ch.Epoch != before.Epoch {
					t.Fatalf("refused claim changed the leader: %s/%d", ch.Leader, ch.Epoch)
				}
				return
			}
			if ch.Leader != h.addr(who) || ch.Epoch != tc.epoch || rc.Epoch != tc.epoch {
				t.Fatalf("leader %s epoch %d (receipt %d), want %s epoch %d", ch.Leader, ch.Epoch, rc.Epoch, h.addr(who), tc.epoch)
			}
			last := rc.Events[len(rc.Events)-1]
			if last.Kind != EventLeaderChanged || last.Member != h.addr(who) || last.Epoch != tc.epoch {
				t.Fatalf("event %+v", last)
			}
		})
	}
}
