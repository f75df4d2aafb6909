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
			h.advance(DefaultHeartbeatTTL - time.Millisecond)
			return "bob", &ClaimLeader{Epoch: 1}
		}, ErrLeaderValid, 0},
		{"leader heartbeat expired", func(h *harness) (string, *ClaimLeader) {
			h.advance(DefaultHeartbeatTTL + time.Millisecond)
			return "bob", &ClaimLeader{Epoch: 1}
		}, nil, 2},
		{"stale epoch", func(h *harness) (string, *ClaimLeader) {
			h.advance(DefaultHeartbeatTTL + time.Millisecond)
			return "bob", &ClaimLeader{Epoch: 0}
		}, ErrStaleEpoch, 0},
		{"already leader", func(h *harness) (string, *ClaimLeader) {
			return "alice", &ClaimLeader{Epoch: 1}
		}, ErrAlreadyLeader, 0},
		{"not a member", func(h *harness) (string, *ClaimLeader) {
			h.advance(DefaultHeartbeatTTL + time.Millisecond)
			return "mallory", &ClaimLeader{Epoch: 1}
		}, ErrNotMember, 0},
		{"fast path: 3 of 4 valid non-leaders", func(h *harness) (string, *ClaimLeader) {
			return "bob", &ClaimLeader{Epoch: 1, Attestations: h.attest(1, "bob", "bob", "carol", "dave")}
		}, nil, 2},
		{"fast path: exactly 2/3 is not more", func(h *harness) (string, *ClaimLeader) {
			// eve's heartbeat expires: 3 valid non-leaders, 2 attest.
			h.advance(DefaultHeartbeatTTL)
			h.keepAll("alice", "bob", "carol", "dave")
			h.keepAll("dave", "dave", "dave")
			h.advance(DefaultHeartbeatTTL - 10*time.Millisecond)
			h.keepAll("alice", "bob", "carol")
			return "bob", &ClaimLeader{Epoch: 1, Attestations: h.attest(1, "bob", "bob", "carol")}
		}, ErrLeaderValid, 0},
		{"fast path: expired attesters do not count", func(h *harness) (string, *ClaimLeader) {
			h.advance(DefaultHeartbeatTTL)
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
			h.advance(DefaultHeartbeatTTL + time.Millisecond)
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

// TestEpochLeaderRecord: every call that changes the leader starts an
// epoch and records its leader for good, whichever rule made the change;
// epoch 0 has none; an epoch not reached is not on record, and a refused
// call records nothing.
func TestEpochLeaderRecord(t *testing.T) {
	type began struct {
		leader string // "" for none
		height uint64 // block of the call that began the epoch
	}
	// Each scenario starts from a channel of alice, bob and carol with no
	// leader yet (epoch 0) and returns the epochs it began, in order.
	tests := []struct {
		name string
		run  func(h *harness) []began
	}{
		{"first leader: a claim on the leaderless channel", func(h *harness) []began {
			h.must("alice", &ClaimLeader{Channel: h.ch, Epoch: 0})
			return []began{{"alice", h.height}}
		}},
		{"claim after the leader's heartbeat expired", func(h *harness) []began {
			h.must("alice", &ClaimLeader{Channel: h.ch, Epoch: 0})
			first := h.height
			h.advance(DefaultHeartbeatTTL + time.Millisecond)
			h.must("bob", &ClaimLeader{Channel: h.ch, Epoch: 1})
			return []began{{"alice", first}, {"bob", h.height}}
		}},
		{"claim with attestations", func(h *harness) []began {
			h.must("alice", &ClaimLeader{Channel: h.ch, Epoch: 0})
			first := h.height
			h.must("carol", &ClaimLeader{Channel: h.ch, Epoch: 1, Attestations: h.attest(1, "carol", "bob", "carol")})
			return []began{{"alice", first}, {"carol", h.height}}
		}},
		{"refused claim records nothing", func(h *harness) []began {
			h.must("alice", &ClaimLeader{Channel: h.ch, Epoch: 0})
			first := h.height
			if _, err := h.call("bob", &ClaimLeader{Channel: h.ch, Epoch: 1}); !errorsIs(err, ErrLeaderValid) {
				h.t.Fatalf("claim against a valid leader: %v", err)
			}
			return []began{{"alice", first}}
		}},
		{"election", func(h *harness) []began {
			h.must("alice", &ClaimLeader{Channel: h.ch, Epoch: 0})
			first := h.height
			pid, err := h.propose("bob", protocol.ProposalElection, &protocol.Election{Epoch: 1, Candidate: h.addr("carol")})
			if err != nil {
				h.t.Fatal(err)
			}
			h.must("carol", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			h.must("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			return []began{{"alice", first}, {"carol", h.height}}
		}},
		{"punishment of the leader: the reporter leads", func(h *harness) []began {
			h.must("alice", &ClaimLeader{Channel: h.ch, Epoch: 0})
			first := h.height
			pid, err := h.propose("bob", protocol.ProposalPunish, h.punishment("alice"))
			if err != nil {
				h.t.Fatal(err)
			}
			h.must("carol", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			h.must("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			return []began{{"alice", first}, {"bob", h.height}}
		}},
		{"punishment of the leader of two: no leader", func(h *harness) []began {
			h.must("alice", &ClaimLeader{Channel: h.ch, Epoch: 0})
			first := h.height
			// carol goes first (no change of leader), leaving alice and bob.
			h.must("carol", &Leave{Channel: h.ch})
			pid, err := h.propose("bob", protocol.ProposalSettlement, &protocol.Settlement{From: 1, To: 1})
			if err != nil {
				h.t.Fatal(err)
			}
			h.must("alice", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			h.must("bob", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			h.must("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			pid, err = h.propose("bob", protocol.ProposalPunish, h.punishment("alice"))
			if err != nil {
				h.t.Fatal(err)
			}
			h.must("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			return []began{{"alice", first}, {"", h.height}}
		}},
		{"leader let go by a settlement: no leader, then a claim", func(h *harness) []began {
			h.must("alice", &ClaimLeader{Channel: h.ch, Epoch: 0})
			first := h.height
			h.must("alice", &Leave{Channel: h.ch})
			pid, err := h.propose("bob", protocol.ProposalSettlement, &protocol.Settlement{From: 1, To: 1})
			if err != nil {
				h.t.Fatal(err)
			}
			h.must("bob", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			h.must("carol", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
			h.must("bob", &ExecuteProposal{Channel: h.ch, Proposal: pid})
			gone := h.height
			h.must("carol", &ClaimLeader{Channel: h.ch, Epoch: 2})
			return []began{{"alice", first}, {"", gone}, {"carol", h.height}}
		}},
		{"leader leaves a closed channel", func(h *harness) []began {
			h.must("alice", &ClaimLeader{Channel: h.ch, Epoch: 0})
			first := h.height
			h.must("bob", &Close{Channel: h.ch})
			h.must("alice", &Leave{Channel: h.ch})
			return []began{{"alice", first}, {"", h.height}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel()
			for _, n := range []string{"alice", "bob", "carol"} {
				h.must(n, &Stake{Channel: h.ch, Amount: 100})
				h.must(n, &Join{Channel: h.ch})
			}
			created := h.chanRec().CreatedHeight
			// Nobody leads epoch 0; epoch 1 is not reached yet.
			if el, err := GetEpochLeader(h.st, h.ch, 0); err != nil || !el.Leader.IsZero() || el.Epoch != 0 || el.Height != created {
				t.Fatalf("epoch 0: %+v, %v", el, err)
			}
			if _, err := GetEpochLeader(h.st, h.ch, 1); !errorsIs(err, ErrNoEpochLeader) {
				t.Fatalf("epoch 1 before any claim: %v", err)
			}
			want := append([]began{{"", created}}, tc.run(h)...)
			ch := h.chanRec()
			if ch.Epoch != uint64(len(want)-1) {
				t.Fatalf("channel at epoch %d, want %d", ch.Epoch, len(want)-1)
			}
			for e, w := range want {
				el, err := GetEpochLeader(h.st, h.ch, uint64(e))
				if err != nil {
					t.Fatalf("epoch %d: %v", e, err)
				}
				var leader protocol.Address
				if w.leader != "" {
					leader = h.addr(w.leader)
				}
				if el.Epoch != uint64(e) || el.Leader != leader || el.Height != w.height {
					t.Fatalf("epoch %d: %+v, want leader %q (%s) from block %d", e, el, w.leader, leader, w.height)
				}
			}
			// The current epoch's record names the channel's leader.
			if el, _ := GetEpochLeader(h.st, h.ch, ch.Epoch); el.Leader != ch.Leader {
				t.Fatalf("current epoch %d led by %s on record, %s in the channel", ch.Epoch, el.Leader, ch.Leader)
			}
			if _, err := GetEpochLeader(h.st, h.ch, ch.Epoch+1); !errorsIs(err, ErrNoEpochLeader) {
				t.Fatalf("epoch %d not reached: %v", ch.Epoch+1, err)
			}
			if _, err := GetEpochLeader(h.st, protocol.ChannelID{9}, 0); !errorsIs(err, ErrNoChannel) {
				t.Fatalf("unknown channel: %v", err)
			}
		})
	}
}
