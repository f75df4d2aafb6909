package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// Censorship complaints (DESIGN §7, cluster/DESIGN.md "Censorship"). A
// member whose tx is not ordered files a complaint on chain against the
// chain's leader; the leader has the channel's CensorshipWindow to answer
// it with one batch of the channel (contract.AnswerIn): one that holds the
// tx, one that holds another tx of the sender that used its nonce, or one
// that orders the sender's leave. Unanswered, the complaint closes the
// channel at its last settled state.
//
// Every node answers the complaints against its own member, for the
// channel's lifetime (it may have lost the lead since): it looks for the
// batch in its Raft log, applied entries only, newest first; when none is
// there, it orders the tx (Submit: as the leader, or through it) and looks
// again. A batch the log no longer holds (compacted into a snapshot)
// cannot be shown. The other nodes watch the complaints against other
// members: they answer one their own log answers (a false complaint would
// close the channel on every member), and execute one still open once the
// chain's time is past its deadline: the channel closes without waiting
// for the complainer to do it.

// censorTxs, when set, makes the leader drop the txs it reports true for:
// they are never ordered and their submitters are never answered. It is
// for tests of a censoring leader only; nil otherwise.
var censorTxs atomic.Pointer[func(leader protocol.Address, tx *protocol.SignedTx) bool]

// censored reports whether the censorTxs hook drops tx at this node.
func (c *Channel) censored(tx *protocol.SignedTx) bool {
	f := censorTxs.Load()
	return f != nil && (*f)(c.me(), tx)
}

// complaintRetry, in ChainPollIntervals (1s by default), is how often the
// complaints loop tries again to answer a complaint, or reads the chain's
// time for the deadlines of others', without news of the channel.
const complaintRetry = 10

// complaint is an open censorship complaint.
type complaint struct {
	id         uint64
	cs         protocol.Censorship
	deadlineMs int64 // chain time
}

// runComplaints answers the censorship complaints filed against this
// node's member, and those against others that its log answers, and
// executes the others' once past their deadline. It learns of proposals
// from the chain view, like the settlement votes (runSettlement).
func (c *Channel) runComplaints(ctx context.Context) {
	t := time.NewTicker(c.cfg.ChainPollInterval)
	defer t.Stop()
	var scan proposalScan
	var open, others []*complaint   // against this member, against others
	var last time.Time              // the last round of answers and deadlines
	refreshed := c.view.refreshed() // re-armed as it fires: a read taken in meanwhile wakes the next round (settler)
	for {
		news := false
		select {
		case <-ctx.Done():
			return
		case <-refreshed:
			refreshed = c.view.refreshed()
			news = true
		case <-t.C:
		}
		for _, pid := range scan.next(c) {
			cp, ok := c.readComplaint(ctx, pid)
			switch {
			case !ok:
			case cp.cs.Accused == c.me():
				c.logger.Warn("censorship complaint filed against this member", "proposal", pid,
					"sender", cp.cs.Tx.Tx.Sender, "nonce", cp.cs.Tx.Tx.Nonce, "tx", cp.cs.Tx.Hash())
				open = append(open, cp)
			default:
				c.logger.Info("censorship complaint filed", "proposal", pid, "accused", cp.cs.Accused, "sender", cp.cs.Tx.Tx.Sender)
				others = append(others, cp)
			}
		}
		if rec := c.view.channel(); rec != nil && rec.Closed {
			open, others = nil, nil
		}
		if len(open)+len(others) == 0 || (!news && time.Since(last) < complaintRetry*c.cfg.ChainPollInterval) {
			continue
		}
		last = time.Now()
		open = keepComplaints(open, func(cp *complaint) bool { return !c.answerComplaint(ctx, cp, true) })
		if len(others) > 0 {
			others = c.executeLapsed(ctx, others)
		}
	}
}

// keepComplaints returns the complaints of cs that keep reports true for,
// in order, reusing cs.
func keepComplaints(cs []*complaint, keep func(*complaint) bool) []*complaint {
	kept := cs[:0]
	for _, cp := range cs {
		if keep(cp) {
			kept = append(kept, cp)
		}
	}
	clear(cs[len(kept):])
	return kept
}

// readComplaint reads proposal pid and returns it if it is an open
// censorship complaint.
func (c *Channel) readComplaint(ctx context.Context, pid uint64) (*complaint, bool) {
	p, err := c.readProposal(ctx, pid)
	if err != nil || p.Kind != protocol.ProposalCensorship || p.Status != contract.ProposalOpen {
		return nil, false
	}
	var cs protocol.Censorship
	if protocol.Unmarshal(p.Data, &cs) != nil {
		return nil, false
	}
	return &complaint{id: pid, cs: cs, deadlineMs: p.DeadlineMs}, true
}

// executeLapsed deals with the complaints of cs, against other members,
// and returns those still to watch: one this node's log answers, it
// answers (anyone may carry the proof, and a false complaint would close
// the channel on every member; the accused's node may be down); one whose
// deadline the chain's time has passed, it executes. An answered
// complaint is refused execution (it is closed), and dropped.
func (c *Channel) executeLapsed(ctx context.Context, cs []*complaint) []*complaint {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	head, err := c.cfg.Chain.Head(cctx)
	if err != nil {
		return cs
	}
	return keepComplaints(cs, func(cp *complaint) bool {
		if head.TimeMs <= cp.deadlineMs {
			return !c.answerComplaint(ctx, cp, false)
		}
		err := c.cfg.Chain.ExecuteProposal(cctx, c.id, cp.id)
		switch {
		case err == nil:
			c.logger.Warn("censorship complaint unanswered: executed, the channel closes", "proposal", cp.id, "accused", cp.cs.Accused)
			_ = c.refreshChain()
			return false
		case errors.Is(err, contract.ErrNotPassed):
			return true // the block's time is not past the deadline yet
		case errors.Is(err, contract.ErrProposalClosed), errors.Is(err, contract.ErrChannelClosed), errors.Is(err, contract.ErrNoProposal):
			return false
		default:
			if ctx.Err() == nil {
				c.logger.Warn("cannot execute a censorship complaint", "proposal", cp.id, "error", err)
			}
			return true
		}
	})
}

// answerComplaint tries once to answer cp from this node's log, after
// ordering its tx when order is set and the log has no answer; it reports
// whether cp needs no more work (answered, or closed on chain).
func (c *Channel) answerComplaint(ctx context.Context, cp *complaint, order bool) bool {
	tx := &cp.cs.Tx
	batch, ans := c.complaintAnswer(tx)
	if ans == contract.AnswerNone && order && c.orderComplained(ctx, cp) {
		batch, ans = c.complaintAnswer(tx)
	}
	if ans == contract.AnswerNone {
		return order && c.complaintClosed(ctx, cp)
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	err := c.cfg.Chain.ProveInclusion(cctx, c.id, cp.id, batch)
	switch {
	case err == nil:
		c.metrics.complaints.WithLabelValues(ans.String()).Inc()
		c.logger.Info("censorship complaint answered", "proposal", cp.id, "answer", ans, "tx", tx.Hash())
		return true
	case errors.Is(err, contract.ErrProposalClosed), errors.Is(err, contract.ErrDeadlinePassed),
		errors.Is(err, contract.ErrChannelClosed), errors.Is(err, contract.ErrNoProposal):
		c.logger.Warn("censorship complaint can no longer be answered", "proposal", cp.id, "error", err)
		return true
	default:
		if ctx.Err() == nil {
			c.logger.Warn("censorship complaint answer refused", "proposal", cp.id, "answer", ans, "error", err)
		}
		return false
	}
}

// orderComplained orders the complained-about tx when this node's
// machine would take it (the sender is a member whose nonce it has not
// used): as the leader, or through it (Submit forwards). It reports
// whether the tx was applied.
func (c *Channel) orderComplained(ctx context.Context, cp *complaint) bool {
	tx := &cp.cs.Tx
	orderable := false
	c.fsm.machine(func(m *fsm.Machine) {
		orderable = m != nil && isMember(m, tx.Tx.Sender) && tx.Tx.Nonce > m.Nonce(tx.Tx.Sender)
	})
	if !orderable {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	out, err := c.Submit(cctx, tx)
	if err != nil {
		if ctx.Err() == nil {
			c.logger.Warn("cannot order a complained-about tx", "proposal", cp.id, "tx", tx.Hash(), "error", err)
		}
		return false
	}
	c.logger.Info("complained-about tx ordered", "proposal", cp.id, "height", out.Height, "status", out.Result.Status)
	return true
}

// complaintClosed reads cp on chain and reports whether it is no longer
// open, so there is nothing left to answer.
func (c *Channel) complaintClosed(ctx context.Context, cp *complaint) bool {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
	defer cancel()
	p, err := c.cfg.Chain.Proposal(cctx, c.id, cp.id)
	if err != nil {
		return false
	}
	if p.Status != contract.ProposalOpen {
		c.logger.Warn("censorship complaint closed unanswered", "proposal", cp.id, "status", p.Status)
		return true
	}
	return false
}

// complaintAnswer returns the newest applied batch of this node's Raft
// log that answers a complaint about tx, the strongest answer first (a
// batch that holds the tx over one that shows its nonce used, over one
// that orders the sender's leave), and what it shows.
func (c *Channel) complaintAnswer(tx *protocol.SignedTx) ([]byte, contract.Answer) {
	first, err := c.store.FirstIndex()
	if err != nil {
		return nil, contract.AnswerNone
	}
	var best []byte
	bestAns := contract.AnswerNone
	for i := c.raft.AppliedIndex(); i >= max(first, 1); i-- {
		var l raft.Log
		if c.store.GetLog(i, &l) != nil || l.Type != raft.LogCommand || len(l.Data) == 0 || l.Data[0] != logBatch {
			continue
		}
		b, err := protocol.DecodeBatch(l.Data[1:])
		if err != nil || b.Channel != c.id {
			continue
		}
		switch a := contract.AnswerIn(b, tx); {
		case a == contract.AnswerIncluded:
			return l.Data[1:], a
		case a != contract.AnswerNone && (bestAns == contract.AnswerNone || a < bestAns):
			best, bestAns = l.Data[1:], a
		}
	}
	return best, bestAns
}
