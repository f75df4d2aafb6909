package chaintest

import (
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

func init() { Scenarios = append(Scenarios, transferScenarios...) }

// transferScenarios are those of transfer_leader: the leader of an epoch
// hands the lead to a successor it names.
var transferScenarios = []Scenario{
	{"transfer_leader: only the leader of the current epoch hands the lead, to a member that may lead", Still, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob", "carol", "dave")
		_, err := s.As("bob").TransferLeader(s.ctx, id, 1, s.Addr("carol"))
		s.want(err, contract.ErrNotLeader)
		_, err = s.As("eve").TransferLeader(s.ctx, id, 1, s.Addr("carol"))
		s.want(err, contract.ErrNotMember)
		_, err = s.As("alice").TransferLeader(s.ctx, id, 0, s.Addr("bob"))
		s.want(err, contract.ErrStaleEpoch)
		_, err = s.As("alice").TransferLeader(s.ctx, id, 2, s.Addr("bob"))
		s.want(err, contract.ErrStaleEpoch)
		_, err = s.As("alice").TransferLeader(s.ctx, id, 1, s.Addr("alice"))
		s.want(err, contract.ErrAlreadyLeader)
		_, err = s.As("alice").TransferLeader(s.ctx, id, 1, s.Addr("eve"))
		s.want(err, contract.ErrNotMember)
		_, err = s.As("alice").TransferLeader(s.ctx, id, 1, protocol.Address{})
		s.want(err, contract.ErrNotMember)
		_, err = s.As("alice").TransferLeader(s.ctx, protocol.ChannelID{9}, 1, s.Addr("bob"))
		s.want(err, contract.ErrNoChannel)
		s.must(s.As("dave").Leave(s.ctx, id))
		_, err = s.As("alice").TransferLeader(s.ctx, id, 1, s.Addr("dave"))
		s.want(err, contract.ErrLeaving)
		if info := s.info(id); info.Leader != s.Addr("alice") || info.Epoch != 1 {
			t.Fatalf("refused transfers changed the lead: leader %s epoch %d", info.Leader, info.Epoch)
		}

		ep, err := s.As("alice").TransferLeader(s.ctx, id, 1, s.Addr("bob"))
		s.must(err)
		info := s.info(id)
		if ep != 2 || info.Leader != s.Addr("bob") || info.Epoch != 2 {
			t.Fatalf("after the transfer: epoch %d (returned %d), leader %s, want bob in epoch 2", info.Epoch, ep, info.Leader)
		}
		el, err := s.As("carol").EpochLeader(s.ctx, id, 2)
		s.must(err)
		if el.Leader != s.Addr("bob") {
			t.Fatalf("epoch 2 led by %s on record", el.Leader)
		}
		// The old leader has nothing left to hand over, and the new one
		// hands it on in its own epoch.
		_, err = s.As("alice").TransferLeader(s.ctx, id, 2, s.Addr("carol"))
		s.want(err, contract.ErrNotLeader)
		_, err = s.As("bob").TransferLeader(s.ctx, id, 1, s.Addr("carol"))
		s.want(err, contract.ErrStaleEpoch)
		ep, err = s.As("bob").TransferLeader(s.ctx, id, 2, s.Addr("alice"))
		s.must(err)
		if info := s.info(id); ep != 3 || info.Leader != s.Addr("alice") {
			t.Fatalf("second transfer: epoch %d, leader %s", ep, info.Leader)
		}
		s.must(s.As("creator").CloseChannel(s.ctx, id))
		_, err = s.As("alice").TransferLeader(s.ctx, id, 3, s.Addr("bob"))
		s.want(err, contract.ErrChannelClosed)
	}},
	{"transfer_leader refuses a successor that was forced out and is banned", Still, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob")
		pid, err := s.As("alice").CreateProposal(s.ctx, id, protocol.ProposalPunish, s.punishment(id, "bob", 3))
		s.must(err) // in a channel of two the report alone passes
		s.must(s.As("alice").ExecuteProposal(s.ctx, id, pid))
		info := s.info(id)
		if _, ok := info.Member(s.Addr("bob")); ok {
			t.Fatal("bob is still a member after his punishment")
		}
		_, err = s.As("alice").TransferLeader(s.ctx, id, info.Epoch, s.Addr("bob"))
		s.want(err, contract.ErrBanned)
	}},
	{"transfer_leader refuses a successor whose heartbeat lapsed, until it sends one", Moves, func(t *testing.T, s *Suite) {
		id := s.channel("alice", "bob")
		s.env.Advance(s.p.HeartbeatTTL + time.Second)
		_, err := s.As("alice").TransferLeader(s.ctx, id, 1, s.Addr("bob"))
		s.want(err, contract.ErrLapsed)
		s.must(s.As("bob").KeepAlive(s.ctx, id))
		ep, err := s.As("alice").TransferLeader(s.ctx, id, 1, s.Addr("bob"))
		s.must(err)
		if info := s.info(id); ep != 2 || info.Leader != s.Addr("bob") {
			t.Fatalf("epoch %d, leader %s", ep, info.Leader)
		}
		// The call was alice's heartbeat: she is valid again.
		if m, err := s.As("bob").Member(s.ctx, id, s.Addr("alice")); err != nil || !m.Valid {
			t.Fatalf("alice after her transfer: %+v, %v", m, err)
		}
	}},
	{"transfer_leader in a channel of candidates names only a candidate", Still, func(t *testing.T, s *Suite) {
		id, names := s.crowd(7)
		_, err := s.As("m0").TransferLeader(s.ctx, id, 1, s.Addr(names[6]))
		s.want(err, contract.ErrNotCandidate)
		ep, err := s.As("m0").TransferLeader(s.ctx, id, 1, s.Addr("m3"))
		s.must(err)
		if info := s.info(id); ep != 2 || info.Leader != s.Addr("m3") {
			t.Fatalf("epoch %d, leader %s", ep, info.Leader)
		}
	}},
}
