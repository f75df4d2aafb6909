package comet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// A node must not take one validator's word for what the chain holds: a
// validator that lies could name a false leader, epoch record, departure or
// settled state. Quorum asks every validator it knows and believes an
// answer only when F+1 of them gave it byte for byte: with at most F
// faulty validators, at least one of those is honest, and an honest
// validator answers only from blocks 2/3 of the voting power committed.
// Honest validators can lag a block behind each other, so a disagreement
// is asked again until the answers settle or the context ends.

// ErrNoQuorum means not enough validators gave the same answer before the
// context ended.
var ErrNoQuorum = errors.New("comet: validators do not agree")

// Quorum is a devchain.Transport over the APIs of several validators of
// one chain. Wrap it in a Client with devchain.NewClient (DialQuorum does).
type Quorum struct {
	clients []*devchain.Client
	f       int
	poll    time.Duration
	// seen is the highest block this Quorum has seen committed (a tx's
	// outcome): a validator behind it is not asked, so a read after a
	// write sees the write even when the validators that answered the tx
	// are not the ones that answer the read.
	seen atomic.Uint64
	// params are the chain's settings once f+1 validators agreed on them:
	// they never change.
	params atomic.Pointer[contract.Params]
}

// NewQuorum reads through clients (one per validator, any signing key),
// believing what f+1 of them say. It needs at least 2f+1 clients, so that
// f+1 honest ones can answer while f lie or are down.
func NewQuorum(clients []*devchain.Client, f int) (*Quorum, error) {
	if f < 0 || len(clients) < 2*f+1 {
		return nil, fmt.Errorf("comet: a quorum tolerating %d faulty validators needs at least %d, got %d", f, 2*f+1, len(clients))
	}
	return &Quorum{clients: clients, f: f, poll: 50 * time.Millisecond}, nil
}

// DialQuorum dials every address (TLS with opts' pins) and returns a
// settlement.Chain signing with key that believes what f+1 validators
// say. A tx is sent to all of them; its outcome too must come from f+1.
func DialQuorum(addrs []string, key *protocol.Key, f int, opts ...devchain.DialOption) (*devchain.Client, error) {
	var clients []*devchain.Client
	for _, a := range addrs {
		cl, err := devchain.Dial(a, key, opts...)
		if err != nil {
			for _, c := range clients {
				c.Close()
			}
			return nil, err
		}
		clients = append(clients, cl)
	}
	q, err := NewQuorum(clients, f)
	if err != nil {
		for _, c := range clients {
			c.Close()
		}
		return nil, err
	}
	return devchain.NewClient(q, key), nil
}

// answer is one validator's answer, reduced to the bytes compared.
type answer[T any] struct {
	key   []byte
	v     T
	err   error
	votes int
}

// ask calls every validator until f+1 give the same answer (value or
// chain error), and returns it as soon as they have, without waiting for
// the rest (a validator that never answers holds nothing up). Transport
// failures count for nothing.
func ask[T any](ctx context.Context, q *Quorum, call func(context.Context, *devchain.Client) (T, error), enc func(T) []byte) (T, error) {
	var zero T
	var lastErr error
	for {
		round, cancel := context.WithCancel(ctx)
		results := make(chan answer[T], len(q.clients))
		for _, cl := range q.clients {
			go func() {
				if min := q.seen.Load(); min > 0 {
					if h, err := cl.Head(round); err != nil || h.Height < min {
						results <- answer[T]{err: fmt.Errorf("validator at height %d, behind %d (%v)", h.Height, min, err)}
						return
					}
				}
				v, err := call(round, cl)
				r := answer[T]{v: v, err: err}
				switch {
				case err == nil:
					r.key = append([]byte{0}, enc(v)...)
				case devchain.ErrorCode(err) != 0:
					e := protocol.NewEncoder(16)
					e.U8(1)
					e.U32(devchain.ErrorCode(err))
					r.key = e.Out()
				}
				results <- r
			}()
		}
		var tally []answer[T] // in arrival order; no map
		for range q.clients {
			r := <-results
			if r.key == nil {
				lastErr = r.err
				continue
			}
			j := 0
			for j < len(tally) && !bytes.Equal(tally[j].key, r.key) {
				j++
			}
			if j == len(tally) {
				tally = append(tally, r)
			}
			if tally[j].votes++; tally[j].votes >= q.f+1 {
				cancel()
				return tally[j].v, tally[j].err
			}
		}
		cancel()
		t := time.NewTimer(q.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, fmt.Errorf("%w: %d kinds of answer (last failure: %v): %w", ErrNoQuorum, len(tally), lastErr, ctx.Err())
		case <-t.C:
		}
	}
}

func encode(v interface{ Encode(*protocol.Encoder) }) []byte {
	e := protocol.NewEncoder(128)
	v.Encode(e)
	return e.Out()
}

// Submit sends raw to every validator and returns the outcome f+1 report.
// Validators answer the same tx with the same outcome (block, index,
// receipt, events), whichever of them put it in the mempool first.
func (q *Quorum) Submit(ctx context.Context, raw []byte) (devchain.Outcome, error) {
	o, err := ask(ctx, q, func(ctx context.Context, cl *devchain.Client) (devchain.Outcome, error) {
		return cl.SubmitRaw(ctx, raw)
	}, func(o devchain.Outcome) []byte {
		e := protocol.NewEncoder(256)
		e.Fixed(o.TxHash[:])
		e.U64(o.Block)
		e.U32(o.Index)
		e.I64(o.TimeMs)
		e.Fixed(o.Receipt.Channel[:])
		e.U64(o.Receipt.Proposal)
		e.U64(o.Receipt.JoinSeq)
		e.U64(o.Receipt.Epoch)
		for i := range o.Events {
			e.Bytes(devchain.EncodeEvent(&o.Events[i]))
		}
		return e.Out()
	})
	if err != nil && o.Err == nil {
		o.Err = err
	}
	for seen := q.seen.Load(); o.Block > seen && !q.seen.CompareAndSwap(seen, o.Block); seen = q.seen.Load() {
	}
	return o, err
}

// Head implements devchain.Transport.
func (q *Quorum) Head(ctx context.Context) (settlement.Head, error) {
	return ask(ctx, q, func(ctx context.Context, cl *devchain.Client) (settlement.Head, error) { return cl.Head(ctx) }, func(h settlement.Head) []byte {
		e := protocol.NewEncoder(16)
		e.U64(h.Height)
		e.I64(h.TimeMs)
		return e.Out()
	})
}

// Channel implements devchain.Transport.
func (q *Quorum) Channel(ctx context.Context, id protocol.ChannelID) (*settlement.ChannelInfo, error) {
	return ask(ctx, q, func(ctx context.Context, cl *devchain.Client) (*settlement.ChannelInfo, error) {
		return cl.Channel(ctx, id)
	}, func(info *settlement.ChannelInfo) []byte {
		e := protocol.NewEncoder(512)
		info.Channel.Encode(e)
		e.I64(info.AtMs)
		for i := range info.Members {
			info.Members[i].Member.Encode(e)
			e.Bool(info.Members[i].Valid)
		}
		return e.Out()
	})
}

// Params implements devchain.Transport: the settings f+1 validators give,
// asked once.
func (q *Quorum) Params(ctx context.Context) (contract.Params, error) {
	if p := q.params.Load(); p != nil {
		return *p, nil
	}
	p, err := ask(ctx, q, func(ctx context.Context, cl *devchain.Client) (contract.Params, error) {
		return cl.Params(ctx)
	}, func(p contract.Params) []byte { return p.Bytes() })
	if err != nil {
		return contract.Params{}, err
	}
	q.params.Store(&p)
	return p, nil
}

// Member implements devchain.Transport.
func (q *Quorum) Member(ctx context.Context, id protocol.ChannelID, a protocol.Address) (*settlement.MemberInfo, error) {
	return ask(ctx, q, func(ctx context.Context, cl *devchain.Client) (*settlement.MemberInfo, error) {
		return cl.Member(ctx, id, a)
	}, func(m *settlement.MemberInfo) []byte {
		e := protocol.NewEncoder(256)
		m.Member.Encode(e)
		e.Bool(m.Valid)
		return e.Out()
	})
}

// Departure implements devchain.Transport.
func (q *Quorum) Departure(ctx context.Context, id protocol.ChannelID, joinSeq uint64) (*contract.Departure, error) {
	return ask(ctx, q, func(ctx context.Context, cl *devchain.Client) (*contract.Departure, error) {
		return cl.Departure(ctx, id, joinSeq)
	}, func(dp *contract.Departure) []byte { return encode(dp) })
}

// EpochLeader implements devchain.Transport.
func (q *Quorum) EpochLeader(ctx context.Context, id protocol.ChannelID, epoch uint64) (*contract.EpochLeader, error) {
	return ask(ctx, q, func(ctx context.Context, cl *devchain.Client) (*contract.EpochLeader, error) {
		return cl.EpochLeader(ctx, id, epoch)
	}, func(el *contract.EpochLeader) []byte { return encode(el) })
}

// Proposal implements devchain.Transport.
func (q *Quorum) Proposal(ctx context.Context, id protocol.ChannelID, pid uint64) (*settlement.ProposalInfo, error) {
	return ask(ctx, q, func(ctx context.Context, cl *devchain.Client) (*settlement.ProposalInfo, error) {
		return cl.Proposal(ctx, id, pid)
	}, func(p *settlement.ProposalInfo) []byte {
		e := protocol.NewEncoder(512)
		p.Proposal.Encode(e)
		for _, v := range p.Votes {
			e.Fixed(v.Voter[:])
			e.U8(uint8(v.Option))
		}
		return e.Out()
	})
}

// Account implements devchain.Transport.
func (q *Quorum) Account(ctx context.Context, a protocol.Address) (*settlement.AccountInfo, error) {
	return ask(ctx, q, func(ctx context.Context, cl *devchain.Client) (*settlement.AccountInfo, error) {
		return cl.Account(ctx, a)
	}, func(acc *settlement.AccountInfo) []byte {
		e := protocol.NewEncoder(32)
		e.U64(acc.Balance)
		e.U64(acc.PoolDeposit)
		e.U64(acc.PoolLocked)
		e.U64(acc.NextNonce)
		return e.Out()
	})
}

// Code implements devchain.Transport.
func (q *Quorum) Code(ctx context.Context, h protocol.Hash) ([]byte, error) {
	return ask(ctx, q, func(ctx context.Context, cl *devchain.Client) ([]byte, error) {
		return cl.Code(ctx, h)
	}, func(b []byte) []byte { return b })
}

// ABI implements devchain.Transport.
func (q *Quorum) ABI(ctx context.Context, id protocol.ChannelID) (*contract.ChannelABI, error) {
	return ask(ctx, q, func(ctx context.Context, cl *devchain.Client) (*contract.ChannelABI, error) {
		return cl.ABI(ctx, id)
	}, func(a *contract.ChannelABI) []byte { return append(a.Hash[:], a.JSON...) })
}

// State implements devchain.Transport.
func (q *Quorum) State(ctx context.Context, id protocol.ChannelID, initial bool) (protocol.State, error) {
	return ask(ctx, q, func(ctx context.Context, cl *devchain.Client) (protocol.State, error) {
		if initial {
			return cl.InitialState(ctx, id)
		}
		return cl.SettledState(ctx, id)
	}, func(st protocol.State) []byte { return encode(st) })
}

// Close closes every validator's connection.
func (q *Quorum) Close() error {
	var errs []error
	for _, cl := range q.clients {
		errs = append(errs, cl.Close())
	}
	return errors.Join(errs...)
}

// Watch follows every validator's event stream and passes on an event once
// f+1 streams delivered it, identical, as the next one. A stream that
// invents an event, skips one or stops cannot hold the others back.
// The streams end with ctx.
func (q *Quorum) Watch(ctx context.Context, from settlement.EventID) (settlement.EventStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	qs := &quorumStream{q: q, ctx: ctx, cancel: cancel, next: from, in: make(chan streamed, 64), heads: make([][]streamed, len(q.clients))}
	for i, cl := range q.clients {
		es, err := cl.Watch(ctx, from)
		if err != nil {
			qs.ended++ // that validator is down; the others may agree
			continue
		}
		go func() {
			for {
				ev, err := es.Recv()
				select {
				case qs.in <- streamed{i: i, ev: ev, err: err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	return qs, nil
}

type streamed struct {
	i   int
	ev  settlement.Event
	err error
}

// quorumStream is read by one goroutine (EventStream's contract).
type quorumStream struct {
	q      *Quorum
	ctx    context.Context
	cancel context.CancelFunc
	next   settlement.EventID
	in     chan streamed
	heads  [][]streamed // per validator, its events not yet passed on
	ended  int
}

// Recv implements settlement.EventStream.
func (qs *quorumStream) Recv() (settlement.Event, error) {
	for {
		// Drop what was passed on already, then look for f+1 identical
		// next events.
		var cand []settlement.Event
		var votes []int
		for i, h := range qs.heads {
			for len(h) > 0 && h[0].ev.ID.Less(qs.next) {
				h = h[1:]
			}
			qs.heads[i] = h
			if len(h) == 0 {
				continue
			}
			b := devchain.EncodeEvent(&h[0].ev)
			found := false
			for j := range cand {
				if bytes.Equal(devchain.EncodeEvent(&cand[j]), b) {
					votes[j]++
					found = true
					break
				}
			}
			if !found {
				cand, votes = append(cand, h[0].ev), append(votes, 1)
			}
		}
		for j, ev := range cand {
			if votes[j] >= qs.q.f+1 {
				qs.next = ev.ID.Next()
				return ev, nil
			}
		}
		if qs.ended > len(qs.q.clients)-(qs.q.f+1) {
			qs.cancel()
			return settlement.Event{}, fmt.Errorf("%w: %d of %d event streams ended", ErrNoQuorum, qs.ended, len(qs.q.clients))
		}
		select {
		case s := <-qs.in:
			if s.err != nil {
				qs.ended++
				continue
			}
			qs.heads[s.i] = append(qs.heads[s.i], s)
		case <-qs.ctx.Done():
			return settlement.Event{}, qs.ctx.Err()
		}
	}
}
