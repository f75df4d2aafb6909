package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/internal/backoff"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// Errors of a planned leader transfer (TransferLeadership).
var (
	// ErrUnknownSuccessor means the member named to lead is not in the
	// channel's Raft configuration (not a member, or its node never
	// joined), or no member could be chosen.
	ErrUnknownSuccessor = errors.New("cluster: the successor is not a server of the channel")
	// ErrSuccessorOffline means the successor's node does not answer.
	ErrSuccessorOffline = errors.New("cluster: the successor's node does not answer")
)

// Transfer is the outcome of a planned leader transfer.
type Transfer struct {
	From protocol.Address `json:"from"`
	To   protocol.Address `json:"to"`
	// Epoch is the epoch the chain began with To as its leader.
	Epoch uint64 `json:"epoch"`
	// Took is from the request to Raft naming To its leader.
	Took time.Duration `json:"took_ns"`
}

// TransferLeadership hands the channel's lead from this node, which must
// lead it on the chain and in Raft, to the member to (zero: the
// candidate whose node answers and has applied the most). The chain
// decides who leads, so the transfer lands there first: this node makes
// the successor a voter if it is not, then asks the chain to name it for
// a new epoch (transfer_leader), and from then on signs nothing more
// (fencing, as for any change of the chain's leader) while the leadership
// loop hands Raft leadership over (handOver). It returns once Raft names
// the successor, or with ctx's error once the chain has and Raft has not
// yet followed: the loops of both nodes keep at it.
//
// Refusals change nothing: ErrNotLeader (naming who leads), and
// ErrUnknownSuccessor or ErrSuccessorOffline for a successor this node
// cannot hand the lead to; the chain's own refusals (a successor whose
// heartbeat lapsed, that is leaving or no candidate) wrap its contract
// error, as does a successor that is no candidate by this node's view of
// the set.
func (c *Channel) TransferLeadership(ctx context.Context, to protocol.Address) (*Transfer, error) {
	start := time.Now()
	leader, epoch, _ := c.view.current()
	if err := c.ctx.Err(); err != nil {
		return nil, ErrClosed
	}
	if leader != c.me() || c.raft.State() != raft.Leader || c.leader.Load() == nil {
		_, raftLeader := c.raft.LeaderWithID()
		who := "nobody"
		if !leader.IsZero() {
			who = leader.String()
		}
		if raftLeader == "" {
			raftLeader = "none known"
		}
		return nil, fmt.Errorf("%w: %s leads epoch %d on chain (Raft leader: %s); ask that node", ErrNotLeader, who, epoch, raftLeader)
	}
	if to == c.me() {
		return nil, fmt.Errorf("%w: %s already leads epoch %d", ErrUnknownSuccessor, to, epoch)
	}
	var srv raft.Server
	if to.IsZero() {
		var err error
		if srv, to, err = c.bestSuccessor(ctx); err != nil {
			return nil, err
		}
	} else {
		var ok bool
		if srv, ok = c.raftServer(to); !ok {
			return nil, fmt.Errorf("%w: %s is not in the channel's Raft configuration", ErrUnknownSuccessor, to)
		}
		if !c.layout().isCandidate(to) {
			// Only a candidate may be a voter, so it is refused here,
			// before it would be promoted, as the chain would refuse it.
			return nil, fmt.Errorf("%w: %s may not lead; the channel's candidates are %v", contract.ErrNotCandidate, to, c.layout().candidates)
		}
		pctx, cancel := context.WithTimeout(ctx, c.cfg.ElectionTimeout)
		_, err := c.node.peers.status(pctx, string(srv.Address), c.id)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%w: %s at %s: %v", ErrSuccessorOffline, to, srv.Address, err)
		}
	}
	// Promote first: once the chain names the successor this node stops
	// signing, and a non-voter could not take Raft leadership.
	if srv.Suffrage != raft.Voter {
		cf := c.raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			return nil, fmt.Errorf("transfer to %s: read configuration: %w", to, err)
		}
		if err := c.raft.AddVoter(srv.ID, srv.Address, cf.Index(), c.cfg.ApplyTimeout).Error(); err != nil {
			return nil, fmt.Errorf("transfer to %s: promote to voter: %w", to, translateRaft(err))
		}
		c.logger.Info("promoted the successor to voter", "to", to)
	}
	newEpoch, err := c.cfg.Chain.TransferLeader(ctx, c.id, epoch, to)
	if err != nil {
		return nil, fmt.Errorf("transfer to %s: chain: %w", to, err)
	}
	c.logger.Info("chain leadership transferred", "to", to, "epoch", newEpoch)
	// The chain feed brings the change to the leadership loop; a read
	// brings it at once.
	if err := c.refreshChain(); err != nil {
		c.logger.Debug("chain read failed", "error", err)
	}
	for {
		if _, id := c.raft.LeaderWithID(); id == srv.ID {
			c.logger.Info("leadership transferred", "to", to, "epoch", newEpoch, "took", time.Since(start))
			return &Transfer{From: c.me(), To: to, Epoch: newEpoch, Took: time.Since(start)}, nil
		}
		if !backoff.Sleep(ctx, 5*time.Millisecond) {
			return &Transfer{From: c.me(), To: to, Epoch: newEpoch, Took: time.Since(start)},
				fmt.Errorf("the chain names %s for epoch %d but Raft has not followed yet (the nodes keep handing it over): %w", to, newEpoch, ctx.Err())
		}
	}
}

// bestSuccessor picks the member to hand the lead to when none is named:
// of the servers other than this node that may lead and whose nodes
// answer, the one that has applied the most (the first in the
// configuration on a tie), so that it takes over with the least to catch
// up.
func (c *Channel) bestSuccessor(ctx context.Context) (raft.Server, protocol.Address, error) {
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return raft.Server{}, protocol.Address{}, fmt.Errorf("choose a successor: %w", translateRaft(err))
	}
	var (
		best    raft.Server
		bestA   protocol.Address
		applied uint64
		found   bool
		asked   int
	)
	for _, s := range cf.Configuration().Servers {
		a, err := protocol.ParseAddress(string(s.ID))
		if err != nil || a == c.me() || !c.layout().isCandidate(a) {
			continue
		}
		asked++
		pctx, cancel := context.WithTimeout(ctx, c.cfg.ElectionTimeout)
		resp, err := c.node.peers.status(pctx, string(s.Address), c.id)
		cancel()
		if err != nil {
			c.logger.Debug("possible successor does not answer", "server", s.ID, "error", err)
			continue
		}
		if !found || resp.AppliedIndex > applied {
			best, bestA, applied, found = s, a, resp.AppliedIndex, true
		}
	}
	if !found {
		if asked == 0 {
			return raft.Server{}, protocol.Address{}, fmt.Errorf("%w: no other member may lead", ErrUnknownSuccessor)
		}
		return raft.Server{}, protocol.Address{}, fmt.Errorf("%w: none of the %d members that may lead answers", ErrSuccessorOffline, asked)
	}
	return best, bestA, nil
}
