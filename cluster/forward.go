package cluster

import (
	"context"
	"sync/atomic"

	"github.com/scraft/scraft/protocol"
)

// forwarder sends a follower's txs on to the leader. Txs that arrive while
// earlier requests are in flight wait and go together in the next request
// (peer API ForwardTxs), which the follower signs and the leader verifies
// once: under load one request carries many txs, and an idle follower
// still sends a lone tx at once. It is the follower's side of the leader's
// batcher.
type forwarder struct {
	c     *Channel
	queue chan *forwarded
	// slots bounds the requests in flight.
	slots chan struct{}
	// requests and txs count what was sent.
	requests, txs atomic.Uint64
}

// forwarded is one tx waiting to be forwarded, and its answer.
type forwarded struct {
	addr string
	tx   *protocol.SignedTx
	raw  []byte // tx's encoding
	hops uint32
	done chan forwardResult // buffered: the sender never blocks
}

type forwardResult struct {
	out *protocol.Outcome
	err error
}

// forwardSlots is how many ForwardTxs requests a channel has in flight at
// once: two, as many as the leader's batches in Raft (MaxInFlight), so
// that txs queue up (and go together) while the leader works, and one slow
// request does not hold the other. Each request costs the leader a
// signature check and a gRPC call whatever it carries: with four, requests
// carried 3.4 txs on average at 64 clients, and every member spent 7-17 %
// more CPU per tx than with two (docs/BENCHMARKS.md); with one, a request
// waited for the one before and the CPU per tx grew again.
const forwardSlots = 2

func newForwarder(c *Channel) *forwarder {
	f := &forwarder{
		c:     c,
		queue: make(chan *forwarded, c.cfg.QueueSize),
		slots: make(chan struct{}, forwardSlots),
	}
	c.wg.Add(1)
	go f.run()
	return f
}

// forward sends tx to the leader at addr and waits for its outcome. A full
// queue answers ErrBusy at once.
func (f *forwarder) forward(ctx context.Context, addr string, tx *protocol.SignedTx, hops uint32) (*protocol.Outcome, error) {
	fw := &forwarded{addr: addr, tx: tx, raw: tx.Bytes(), hops: hops, done: make(chan forwardResult, 1)}
	select {
	case f.queue <- fw:
	default:
		f.c.metrics.busy.Inc()
		return nil, ErrBusy
	}
	select {
	case r := <-fw.done:
		return r.out, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-f.c.ctx.Done():
		return nil, ErrClosed
	}
}

// run gathers queued txs into requests until the channel closes.
func (f *forwarder) run() {
	defer f.c.wg.Done()
	ctx := f.c.ctx
	var next *forwarded // taken from the queue but bound elsewhere
	for {
		first := next
		next = nil
		if first == nil {
			select {
			case first = <-f.queue:
			case <-ctx.Done():
				f.drain()
				return
			}
		}
		// Take a slot first: while every slot is busy, txs pile up in the
		// queue and go together.
		select {
		case f.slots <- struct{}{}:
		case <-ctx.Done():
			first.done <- forwardResult{err: ErrClosed}
			f.drain()
			return
		}
		group := []*forwarded{first}
		size := len(first.raw)
	gather:
		for len(group) < maxForwardTxs {
			select {
			case fw := <-f.queue:
				if fw.addr != first.addr || fw.hops != first.hops || size+len(fw.raw) > maxForwardBytes {
					next = fw
					break gather
				}
				group = append(group, fw)
				size += len(fw.raw)
			default:
				break gather
			}
		}
		f.c.wg.Add(1) // run holds the group open: Add cannot race Wait
		go f.send(group)
	}
}

// send makes one request of group and answers each tx.
func (f *forwarder) send(group []*forwarded) {
	defer f.c.wg.Done()
	defer func() { <-f.slots }()
	ctx, cancel := context.WithTimeout(f.c.ctx, f.c.cfg.ApplyTimeout+f.c.cfg.ElectionTimeout)
	defer cancel()
	txs := make([]*protocol.SignedTx, len(group))
	raw := make([][]byte, len(group))
	for i, fw := range group {
		txs[i], raw[i] = fw.tx, fw.raw
	}
	outs, errs := f.c.node.peers.forwardTxs(ctx, group[0].addr, f.c.id, txs, raw, group[0].hops)
	f.c.metrics.forwardSize.Observe(float64(len(group)))
	f.requests.Add(1)
	f.txs.Add(uint64(len(group)))
	for i, fw := range group {
		fw.done <- forwardResult{out: outs[i], err: errs[i]}
	}
}

// drain answers whatever is still queued when the channel closes.
func (f *forwarder) drain() {
	for {
		select {
		case fw := <-f.queue:
			fw.done <- forwardResult{err: ErrClosed}
		default:
			return
		}
	}
}
