package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/scraft/scraft/protocol"
)

// ErrNoLeader is returned by Complain when the node knows no leader of the
// channel to accuse.
var ErrNoLeader = errors.New("client: the channel has no leader to complain about")

// Complain files a censorship complaint on Config.Chain about tx, one of
// the client's own signed txs, against the channel's leader as the node
// reports it, and returns the complaint's proposal id. The leader must
// answer it within the channel's censorship window (by ordering the tx,
// or by showing that its nonce was used or its sender left), or anyone
// may execute the complaint, which closes the channel at its last settled
// state. Call and CallTx file one by themselves when ComplainAfter is set.
func (c *Client) Complain(ctx context.Context, tx *protocol.SignedTx) (uint64, error) {
	if c.cfg.Chain == nil {
		return 0, errors.New("client: no Chain to file complaints with (Config.Chain)")
	}
	if tx.Tx.Sender != c.key.Address() {
		return 0, fmt.Errorf("client: tx sent by %s, not this client's %s: a member complains about its own txs only", tx.Tx.Sender, c.key.Address())
	}
	st, err := c.Status(ctx, tx.Tx.Channel)
	if err != nil {
		return 0, fmt.Errorf("complain: channel status: %w", err)
	}
	if st.Leader.IsZero() {
		return 0, ErrNoLeader
	}
	data := protocol.Marshal(&protocol.Censorship{Accused: st.Leader, Tx: *tx})
	pid, err := c.cfg.Chain.CreateProposal(ctx, tx.Tx.Channel, protocol.ProposalCensorship, data)
	if err != nil {
		return 0, fmt.Errorf("complain: %w", err)
	}
	c.cfg.Logger.Warn("censorship complaint filed", "channel", tx.Tx.Channel, "tx", tx.Hash(), "leader", st.Leader, "proposal", pid)
	return pid, nil
}

// complaintTimer files a complaint about a tx once ComplainAfter passed
// without its outcome.
type complaintTimer struct {
	t      *time.Timer
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	id     uint64
}

// complainLater arms a complaint about tx, when ComplainAfter is set and
// tx is the client's own; stop disarms it and returns the complaint filed,
// if any.
func (c *Client) complainLater(ctx context.Context, tx *protocol.SignedTx) *complaintTimer {
	if c.cfg.ComplainAfter <= 0 || c.cfg.Chain == nil || tx.Tx.Sender != c.key.Address() {
		return nil
	}
	ct := &complaintTimer{done: make(chan struct{})}
	cctx, cancel := context.WithCancel(ctx)
	ct.cancel = cancel
	ct.t = time.AfterFunc(c.cfg.ComplainAfter, func() {
		defer close(ct.done)
		pid, err := c.Complain(cctx, tx)
		if err != nil {
			if cctx.Err() == nil {
				c.cfg.Logger.Warn("cannot file a censorship complaint", "tx", tx.Hash(), "error", err)
			}
			return
		}
		ct.mu.Lock()
		ct.id = pid
		ct.mu.Unlock()
	})
	return ct
}

// stop disarms the timer, waits for a complaint being filed, and returns
// its id (0 for none).
func (ct *complaintTimer) stop() uint64 {
	if ct == nil {
		return 0
	}
	if ct.t.Stop() {
		ct.cancel()
		return 0
	}
	<-ct.done
	ct.cancel()
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.id
}
