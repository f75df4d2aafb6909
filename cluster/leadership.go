package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// runLeadership is the channel's control loop. The chain decides who
// leads; Raft follows (DESIGN §6):
//
//   - Raft leader and chain leader of the current epoch: run the batcher
//     for that epoch, after a Barrier.
//   - Raft leader, chain names another member: stop signing at once
//     (fencing); transfer Raft leadership to that member if it answers,
//     else claim the chain's leadership with the other members'
//     attestations that it is unreachable.
//   - Raft leader, chain names nobody: claim.
//   - Not Raft leader: no leader work.
//
// It also promotes caught-up non-voters while it leads. It acts at once on
// a change of the chain's leader or epoch in the view (the chain feed
// keeps the view current), and rereads the chain when it gains Raft
// leadership, so that it never hands leadership back to a chain leader
// its view holds but the chain has replaced.
func (c *Channel) runLeadership(ctx context.Context) {
	st := &leadershipState{}
	defer c.stopLeading()
	recon := time.NewTicker(c.cfg.ReconcileInterval)
	defer recon.Stop()
	_ = c.refreshChain()
	for {
		var failed <-chan struct{}
		if run := c.leader.Load(); run != nil {
			failed = run.failed
		}
		_, _, changed := c.view.current()
		select {
		case <-ctx.Done():
			return
		case isLeader := <-c.notifyCh:
			if isLeader {
				c.logger.Info("raft leadership gained")
				st.barrierDone = false
				if err := c.refreshChain(); err != nil && ctx.Err() == nil {
					c.logger.Debug("chain read failed", "error", err)
				}
			} else {
				c.logger.Info("raft leadership lost")
				c.stopLeading()
			}
		case <-failed:
			c.logger.Warn("leader work failed, restarting it")
			c.stopLeading()
			st.barrierDone = false
		case <-changed:
		case <-recon.C:
		}
		c.reconcile(st)
	}
}

type leadershipState struct {
	barrierDone bool
	// lastClaim is when this node last handed over or claimed, against
	// the chain's claimEpoch: it tries again for the same epoch only after
	// an ElectionTimeout, and at once for a new one.
	lastClaim   time.Time
	claimEpoch  uint64
	lastPromote time.Time
	// leaderless is since when this follower has known no Raft leader
	// (zero while it knows one).
	leaderless time.Time
}

func (c *Channel) stopLeading() {
	if run := c.leader.Swap(nil); run != nil {
		run.halt()
		c.logger.Info("stopped leading", "epoch", run.epoch)
	}
}

func (c *Channel) me() protocol.Address { return c.cfg.Key.Address() }

func (c *Channel) reconcile(st *leadershipState) {
	if c.ctx.Err() != nil {
		return
	}
	if c.raft.State() != raft.Leader {
		c.stopLeading()
		c.claimIfLeaderless(st)
		return
	}
	st.leaderless = time.Time{}
	if !st.barrierDone {
		if err := c.raft.Barrier(c.cfg.ApplyTimeout).Error(); err != nil {
			c.logger.Warn("barrier failed", "error", err)
			return
		}
		st.barrierDone = true
	}
	leader, epoch, _ := c.view.current()
	run := c.leader.Load()
	switch {
	case leader == c.me():
		if run != nil && run.epoch == epoch {
			c.reconcileServers(st)
			c.yieldToCandidate(st)
			return
		}
		c.stopLeading()
		if err := c.ensureGenesis(); err != nil {
			c.logger.Warn("cannot load the channel's genesis", "error", err)
			return
		}
		c.leader.Store(c.startLeaderRun(epoch))
		c.metrics.failovers.Inc()
		c.logger.Info("leading", "epoch", epoch)
		c.reconcileServers(st)
	default:
		// Fencing: never sign for an epoch the chain gave someone else.
		c.stopLeading()
		if epoch == st.claimEpoch && time.Since(st.lastClaim) < c.cfg.ElectionTimeout {
			return
		}
		st.lastClaim, st.claimEpoch = time.Now(), epoch
		// A chain leader that lost its seat is not handed back the lead:
		// a candidate's claim against it needs no attestations.
		if !leader.IsZero() && c.layout().isCandidate(leader) && c.handOver(leader) {
			return
		}
		c.claim(epoch, leader)
	}
}

// claimIfLeaderless claims the chain's leadership from a follower when
// Raft has had no leader for claimWindow and the chain's leader is no
// longer valid there (its heartbeat expired: the chain takes the claim
// without attestations). Raft alone would elect a member that then
// claims; this is for when it cannot, such as a member that wins every
// election with a claimed longer log and never leads. Once the chain
// names this node, the others refuse other members' vote requests while
// it wins its election (liar.go).
func (c *Channel) claimIfLeaderless(st *leadershipState) {
	if _, id := c.raft.LeaderWithID(); id != "" || c.raft.State() == raft.Shutdown {
		st.leaderless = time.Time{}
		return
	}
	now := time.Now()
	if st.leaderless.IsZero() {
		st.leaderless = now
	}
	leader, epoch, _ := c.view.current()
	if leader == c.me() || now.Sub(st.leaderless) < c.cfg.claimWindow() ||
		(epoch == st.claimEpoch && now.Sub(st.lastClaim) < c.cfg.ElectionTimeout) {
		return
	}
	if _, ok := c.raftServer(c.me()); !ok {
		return // not a server of the group (yet): nothing to lead
	}
	st.lastClaim, st.claimEpoch = now, epoch
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ApplyTimeout)
	info, err := c.cfg.Chain.Channel(ctx, c.id)
	cancel()
	if err != nil || info.Epoch != epoch {
		_ = c.refreshChain()
		return
	}
	if m, ok := info.Member(leader); ok && m.Valid {
		return // the chain still backs it: Raft's own election, or attestations, replace it
	}
	c.logger.Warn("no Raft leader and the chain's leader has expired there: claiming", "epoch", epoch, "leader", leader,
		"leaderless", now.Sub(st.leaderless).Round(time.Millisecond))
	c.claim(epoch, protocol.Address{})
}

// ensureGenesis appends the genesis command when the log has none: this
// node is the channel's first leader (seed §6).
func (c *Channel) ensureGenesis() error {
	var have bool
	c.fsm.machine(func(m *fsm.Machine) { have = c.fsm.gen != nil })
	if have {
		if c.fsm.genErr != nil {
			return c.fsm.genErr
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ApplyTimeout)
	defer cancel()
	g, err := c.loadGenesis(ctx)
	if err != nil {
		return err
	}
	f := c.raft.Apply(encodeLog(logGenesis, g.bytes()), c.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		return err
	}
	if res, ok := f.Response().(*applyResult); ok && res.err != nil {
		return res.err
	}
	c.logger.Info("channel loaded from chain", "contract", g.Contract, "members", len(g.Members), "highest_join_seq", g.HighestJoinSeq)
	return nil
}

// handOver makes the chain's leader the Raft leader when it is a member
// that answers: promote it to voter if needed, then transfer. It reports
// whether the chain leader answered (so no claim is due).
func (c *Channel) handOver(leader protocol.Address) bool {
	srv, ok := c.raftServer(leader)
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ElectionTimeout)
	defer cancel()
	if _, err := c.node.peers.status(ctx, string(srv.Address), c.id); err != nil {
		c.logger.Info("chain leader does not answer", "leader", leader, "error", err)
		return false
	}
	if srv.Suffrage != raft.Voter {
		cf := c.raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			return true
		}
		if err := c.raft.AddVoter(srv.ID, srv.Address, cf.Index(), c.cfg.ApplyTimeout).Error(); err != nil {
			c.logger.Warn("cannot promote the chain leader", "leader", leader, "error", err)
			return true
		}
	}
	c.logger.Info("transferring raft leadership to the chain leader", "to", leader)
	if err := c.raft.LeadershipTransferToServer(srv.ID, srv.Address).Error(); err != nil {
		c.logger.Warn("leadership transfer failed", "to", leader, "error", err)
		return true
	}
	// A transfer to a server that cannot win elects someone else without
	// an error: check who leads once a leader is known.
	deadline := time.Now().Add(c.cfg.ElectionTimeout)
	for {
		_, id := c.raft.LeaderWithID()
		if id == srv.ID {
			c.logger.Info("leadership transferred", "to", leader)
			return true
		}
		if id != "" || time.Now().After(deadline) || c.ctx.Err() != nil {
			c.logger.Warn("leadership transfer went elsewhere", "to", leader, "leader", id)
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// raftServer returns the Raft server of a member.
func (c *Channel) raftServer(a protocol.Address) (raft.Server, bool) {
	cf := c.raft.GetConfiguration()
	if cf.Error() != nil {
		return raft.Server{}, false
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == a.String() {
			return s, true
		}
	}
	return raft.Server{}, false
}

// claim asks the chain to make this node the leader after epoch. With a
// leader in place it carries attestations, its own included, from the
// other members that the leader is unreachable.
func (c *Channel) claim(epoch uint64, leader protocol.Address) {
	if !c.mayLead() {
		c.logger.Debug("not claiming: this member is no candidate of the channel", "epoch", epoch)
		return
	}
	var atts []protocol.Attestation
	if !leader.IsZero() {
		atts = c.gatherAttestations(epoch, leader)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ApplyTimeout)
	defer cancel()
	start := time.Now()
	newEpoch, err := c.cfg.Chain.ClaimLeader(ctx, c.id, epoch, atts)
	if err != nil {
		if errors.Is(err, contract.ErrAlreadyLeader) {
			_ = c.refreshChain()
			return
		}
		c.logger.Warn("leader claim refused", "epoch", epoch, "attestations", len(atts), "error", err)
		_ = c.refreshChain()
		return
	}
	c.logger.Info("claimed leadership", "epoch", newEpoch, "attestations", len(atts), "took", time.Since(start))
	_ = c.refreshChain()
}

// gatherAttestations asks every other Raft server for an attestation that
// the leader of epoch is unreachable, and signs its own.
func (c *Channel) gatherAttestations(epoch uint64, leader protocol.Address) []protocol.Attestation {
	own := protocol.Attestation{Channel: c.id, Epoch: epoch, Claimant: c.me()}
	own.Sign(c.cfg.Key)
	atts := []protocol.Attestation{own}
	cf := c.raft.GetConfiguration()
	if cf.Error() != nil {
		return atts
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ElectionTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == c.me().String() || string(s.ID) == leader.String() {
			continue
		}
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			a, err := c.node.peers.attest(ctx, addr, c.id, epoch)
			if err != nil {
				c.logger.Debug("no attestation", "from", addr, "error", err)
				return
			}
			if a.Verify() != nil || a.Channel != c.id || a.Epoch != epoch || a.Claimant != c.me() {
				c.logger.Warn("bad attestation", "from", addr)
				return
			}
			mu.Lock()
			atts = append(atts, *a)
			mu.Unlock()
		}(string(s.Address))
	}
	wg.Wait()
	return atts
}

// attest answers a member's request for an attestation that the leader of
// epoch is unreachable. This member signs only when it has itself admitted
// no append from that leader, under its TLS identity, for attestAfter.
func (c *Channel) attest(claimant protocol.Address, epoch uint64) (*protocol.Attestation, error) {
	leader, cur, _ := c.view.current()
	if cur < epoch {
		_ = c.refreshChain()
		leader, cur, _ = c.view.current()
	}
	switch {
	case cur != epoch:
		return nil, errors.New("cluster: attestation for another epoch than the chain's")
	case leader == c.me():
		return nil, errors.New("cluster: the leader of that epoch is this node, and it is alive")
	case leader == claimant:
		return nil, errors.New("cluster: the claimant leads already")
	case c.delegating():
		// Its last contact with the leader is stale by design: the
		// chain counts candidates' attestations only.
		return nil, errors.New("cluster: a delegator hears the leader through its candidate and does not attest")
	}
	// Only this node's own observation counts: when it last admitted an
	// append from the leader under the leader's TLS identity. Raft's view
	// (who it follows, its last contact) another member could have set.
	if time.Since(c.node.authz.lastContact(c.id, leader)) <= c.cfg.attestAfter() {
		return nil, errors.New("cluster: the leader is reachable from here")
	}
	a := &protocol.Attestation{Channel: c.id, Epoch: epoch, Claimant: claimant}
	a.Sign(c.cfg.Key)
	return a, nil
}

// promoteNonVoters makes caught-up non-voters voters, one change at a time.
func (c *Channel) promoteNonVoters(st *leadershipState) {
	if time.Since(st.lastPromote) < c.cfg.ReconcileInterval {
		return
	}
	st.lastPromote = time.Now()
	cf := c.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	commit := c.raft.CommitIndex()
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage != raft.Nonvoter {
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ElectionTimeout)
		resp, err := c.node.peers.status(ctx, string(s.Address), c.id)
		cancel()
		if err != nil {
			c.logger.Debug("non-voter does not answer", "server", s.ID, "error", err)
			continue
		}
		if resp.AppliedIndex+uint64(c.cfg.BatchMaxTxs) < commit {
			c.logger.Debug("non-voter catching up", "server", s.ID, "applied", resp.AppliedIndex, "commit", commit)
			continue
		}
		if err := c.raft.AddVoter(s.ID, s.Address, cf.Index(), c.cfg.ApplyTimeout).Error(); err != nil {
			c.logger.Warn("cannot promote", "server", s.ID, "error", err)
			return
		}
		c.logger.Info("promoted to voter", "server", s.ID, "address", s.Address)
		return
	}
}
