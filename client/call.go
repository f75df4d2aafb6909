package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/scraft/scraft/clientapi"
	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/protocol"
)

// Result is the committed, verified outcome of a call.
type Result struct {
	// Height is the tx's height in the channel; TxHash its hash.
	Height uint64
	TxHash protocol.Hash
	// Status is ok or why the call failed; a failed call still took its
	// height and, unless its nonce was wrong, its nonce.
	Status    protocol.Status
	AbortCode uint32
	Message   string
	GasUsed   uint64
	// Output is the contract function's return value.
	Output []byte
	// ChangeSet and Events are what the call changed and emitted.
	ChangeSet protocol.ChangeSet
	Events    []protocol.Event
	// Digest is the channel digest D(Height).
	Digest protocol.Hash
	// Complaint is the censorship complaint the client filed about the
	// call when it was not committed within Config.ComplainAfter; 0 for
	// none.
	Complaint uint64
}

func resultOf(o *protocol.Outcome) *Result {
	return &Result{
		Height: o.Height, TxHash: o.Hash, Status: o.Result.Status, AbortCode: o.Result.AbortCode,
		Message: o.Message, GasUsed: o.Result.GasUsed, Output: o.Output, ChangeSet: o.ChangeSet,
		Events: o.Events, Digest: o.Digest,
	}
}

// nonceState is the next nonce of the client in one channel. Its mutex
// orders the client's calls to the channel.
type nonceState struct {
	mu    sync.Mutex
	next  uint64
	known bool
}

func (c *Client) nonce(ch protocol.ChannelID) *nonceState {
	c.nonces.Lock()
	defer c.nonces.Unlock()
	ns := c.nonces.m[ch]
	if ns == nil {
		ns = &nonceState{}
		c.nonces.m[ch] = ns
	}
	return ns
}

// JoinInfo is what Join returns.
type JoinInfo struct {
	// Status is the channel as the node sees it, without the member list
	// (Status has it: it asks every member's node and the chain).
	Status *protocol.ChannelStatus
	// NextNonce is the nonce the client's next tx in the channel carries.
	NextNonce uint64
}

// Join attaches the client to a channel it is a member of and learns its
// next nonce there. Call does it by itself when needed.
func (c *Client) Join(ctx context.Context, ch protocol.ChannelID) (*JoinInfo, error) {
	ns := c.nonce(ch)
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return c.joinLocked(ctx, ch, ns)
}

func (c *Client) joinLocked(ctx context.Context, ch protocol.ChannelID, ns *nonceState) (*JoinInfo, error) {
	r, err := c.do(ctx, &clientpb.ClientMessage{Body: &clientpb.ClientMessage_Join{Join: &clientpb.JoinRequest{Channel: ch[:]}}})
	if err != nil {
		return nil, err
	}
	if e := clientapi.ErrorFromPB(r.GetError()); e != nil {
		return nil, e
	}
	st, err := clientapi.StatusFromPB(r.GetJoined().GetStatus())
	if err != nil {
		return nil, err
	}
	ns.next, ns.known = r.GetJoined().GetNextNonce(), true
	return &JoinInfo{Status: st, NextNonce: ns.next}, nil
}

// Call signs a call of function ("contract::name") with args, submits it
// and returns once it is committed and verified by the node. A call the
// contract refused returns both its Result and a *protocol.Error (CodeAbort
// with the abort code, CodeOutOfGas, ...). When the connection or the
// leader is lost on the way, the same signed tx is sent again, so a tx that
// committed returns its first outcome and never runs twice.
func (c *Client) Call(ctx context.Context, ch protocol.ChannelID, function string, args []byte) (*Result, error) {
	if err := protocol.ValidateFunction(function); err != nil {
		return nil, err
	}
	if len(args) > protocol.MaxArgsLen {
		return nil, &protocol.Error{Code: protocol.CodeTooLarge, Message: fmt.Sprintf("client: args of %d bytes, at most %d", len(args), protocol.MaxArgsLen)}
	}
	ns := c.nonce(ch)
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if !ns.known {
			if _, err := c.joinLocked(ctx, ch, ns); err != nil {
				return nil, err
			}
		}
		tx := protocol.SignTx(c.key, protocol.Tx{
			Channel: ch, Nonce: ns.next, Function: function, Args: args,
			TimestampMs: uint64(time.Now().UnixMilli()),
		})
		var sends int
		res, err := c.submitCounted(ctx, tx, &sends)
		ns.update(tx.Tx.Nonce, res, err)
		if res == nil && protocol.CodeOf(err) == protocol.CodeStaleNonce && ctx.Err() == nil {
			if sends > 1 {
				// This very tx went out more than once: an earlier try may
				// have committed it and the node no longer holds its
				// outcome. Signing the call again could run it twice.
				ns.known = false
				return nil, fmt.Errorf("%w: tx %s may have committed on an earlier try (its nonce %d is used and the node no longer holds its outcome)",
					ErrMaybeCommitted, tx.Hash(), tx.Tx.Nonce)
			}
			// Refused on its first and only send: the nonce was used by
			// another tx (the node we learnt it from lagged, or another
			// client shares the key), so this call never ran: sign it
			// again with a fresh nonce.
			if attempt < 3 {
				continue
			}
			ns.known = false
		}
		return res, err
	}
}

// update records what submitting a tx with nonce did to the next nonce.
func (ns *nonceState) update(nonce uint64, res *Result, err error) {
	switch {
	case res != nil && res.Status == protocol.StatusBadNonce:
		ns.known = false // someone else used the key: learn the nonce again
	case res != nil && (res.Status == protocol.StatusNotMember || res.Status == protocol.StatusBadSignature):
		// refused before its nonce counted
	case res != nil:
		if nonce >= ns.next {
			ns.next = nonce + 1
		}
	case protocol.CodeOf(err) == protocol.CodeStaleNonce:
		// Refused before ordering: the nonce is taken, try the next.
		ns.next = max(ns.next, nonce+1)
	case refusedBeforeOrdering(err):
	default:
		// The tx may or may not commit, or the nonce was stale: learn the
		// nonce again next time.
		ns.known = false
	}
}

// refusedBeforeOrdering reports whether err means the node refused the tx
// without ordering it, so its nonce is still free.
func refusedBeforeOrdering(err error) bool {
	var e *protocol.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case protocol.CodeBusy, protocol.CodeBadRequest, protocol.CodeTooLarge, protocol.CodeNoChannel, protocol.CodeStaleNonce,
		protocol.CodeNotMember, protocol.CodeBadSignature, protocol.CodeWrongSender:
		return true
	}
	return false
}

// CallTx submits a tx signed elsewhere (its sender must be the client's
// address) and waits for its outcome like Call. Submitting the same tx
// again returns its first outcome. When it commits, later Calls to the
// channel use the nonces after its own.
func (c *Client) CallTx(ctx context.Context, tx *protocol.SignedTx) (*Result, error) {
	if tx.Tx.Sender != c.key.Address() {
		return c.submit(ctx, tx)
	}
	ns := c.nonce(tx.Tx.Channel)
	ns.mu.Lock()
	defer ns.mu.Unlock()
	res, err := c.submit(ctx, tx)
	if ns.known && (res != nil || !refusedBeforeOrdering(err)) {
		ns.update(tx.Tx.Nonce, res, err)
	}
	return res, err
}

func (c *Client) submit(ctx context.Context, tx *protocol.SignedTx) (*Result, error) {
	return c.submitCounted(ctx, tx, nil)
}

func (c *Client) submitCounted(ctx context.Context, tx *protocol.SignedTx, sends *int) (*Result, error) {
	ct := c.complainLater(ctx, tx)
	res, err := c.sendCall(ctx, tx, sends)
	if pid := ct.stop(); pid != 0 {
		if res != nil {
			res.Complaint = pid
		}
		if err != nil {
			err = fmt.Errorf("%w (censorship complaint %d filed about tx %s)", err, pid, tx.Hash())
		}
	}
	return res, err
}

func (c *Client) sendCall(ctx context.Context, tx *protocol.SignedTx, sends *int) (*Result, error) {
	m := &clientpb.ClientMessage{Body: &clientpb.ClientMessage_Call{Call: &clientpb.CallRequest{Tx: tx.Bytes()}}}
	r, err := c.doCounted(ctx, m, sends)
	if err != nil {
		return nil, err
	}
	e := clientapi.ErrorFromPB(r.GetError())
	if r.GetCall() == nil {
		if e == nil {
			return nil, fmt.Errorf("client: node answered a call with neither outcome nor error")
		}
		return nil, e
	}
	o, err := clientapi.OutcomeFromPB(r.GetCall())
	if err != nil {
		return nil, err
	}
	if o.Hash != tx.Hash() {
		return nil, fmt.Errorf("client: node answered tx %s with the outcome of %s", tx.Hash(), o.Hash)
	}
	res := resultOf(o)
	if e != nil {
		return res, e
	}
	return res, nil
}

// Status returns the channel's status as the node sees it.
func (c *Client) Status(ctx context.Context, ch protocol.ChannelID) (*protocol.ChannelStatus, error) {
	r, err := c.do(ctx, &clientpb.ClientMessage{Body: &clientpb.ClientMessage_Status{Status: &clientpb.StatusRequest{Channel: ch[:]}}})
	if err != nil {
		return nil, err
	}
	if e := clientapi.ErrorFromPB(r.GetError()); e != nil {
		return nil, e
	}
	return clientapi.StatusFromPB(r.GetStatus())
}

// Leave takes the client's address out of the channel and returns once it
// is out: it signs a scraft::leave call (the member's own request, which
// every member verifies), the channel settles past it, the leader orders
// the leave (the contract's on_leave runs) and, if the key runs a node,
// takes that node out of the channel's Raft group. The stake on the
// settlement chain is released by that settlement when the key asked the
// chain to leave before (settlement.Chain.Leave with the same key, as
// `scraft leave --chain` does; a node does it for its own key), else by
// the next settlement after it asks. A channel refuses to lose its only
// member or its quorum (CodeBadRequest, with the reason).
func (c *Client) Leave(ctx context.Context, ch protocol.ChannelID) error {
	return c.request(ctx, ch, protocol.RequestLeave)
}

// CloseChannel closes the channel and returns once it is closed: it signs
// a scraft::close call; from its height the state is final (later calls
// are refused), the leader settles it and closes the channel on the
// settlement chain, and every node stops hosting it (calls then answer
// CodeChannelClosed, which the SDK does not retry).
func (c *Client) CloseChannel(ctx context.Context, ch protocol.ChannelID) error {
	return c.request(ctx, ch, protocol.RequestClose)
}

// request sends a signed request of the reserved namespace and waits for
// its Done. A retry after a reconnect sends the same tx.
func (c *Client) request(ctx context.Context, ch protocol.ChannelID, function string) error {
	ns := c.nonce(ch)
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if !ns.known {
		if _, err := c.joinLocked(ctx, ch, ns); err != nil {
			return err
		}
	}
	tx := protocol.SignTx(c.key, protocol.Tx{Channel: ch, Nonce: ns.next, Function: function, TimestampMs: uint64(time.Now().UnixMilli())})
	m := &clientpb.ClientMessage{}
	if function == protocol.RequestClose {
		m.Body = &clientpb.ClientMessage_Close{Close: &clientpb.CloseRequest{Channel: ch[:], Tx: tx.Bytes()}}
	} else {
		m.Body = &clientpb.ClientMessage_Leave{Leave: &clientpb.LeaveRequest{Channel: ch[:], Tx: tx.Bytes()}}
	}
	err := c.done(ctx, m)
	switch {
	case err == nil:
		ns.next = max(ns.next, tx.Tx.Nonce+1)
	case refusedBeforeOrdering(err):
	default:
		ns.known = false // it may have been ordered: learn the nonce again
	}
	return err
}

func (c *Client) done(ctx context.Context, m *clientpb.ClientMessage) error {
	r, err := c.do(ctx, m)
	if err != nil {
		return err
	}
	if e := clientapi.ErrorFromPB(r.GetError()); e != nil {
		return e
	}
	if r.GetDone() == nil {
		return fmt.Errorf("client: unexpected answer %T", r.GetBody())
	}
	return nil
}
