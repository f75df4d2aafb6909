package devchain

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// view runs fn over the committed state and the head it belongs to.
func (c *Chain) view(fn func(st contract.Store, head settlement.Head) error) error {
	c.mu.Lock()
	closed := c.mu.closed
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return c.db.View(func(tx *bolt.Tx) error {
		// The head is read inside the bbolt transaction so that it matches
		// the state the transaction sees.
		var head settlement.Head
		if h := tx.Bucket(bucketMeta).Get(keyHead); len(h) == 16 {
			head = settlement.Head{Height: binary.BigEndian.Uint64(h), TimeMs: int64(binary.BigEndian.Uint64(h[8:]))}
		}
		return fn(&boltStore{b: tx.Bucket(bucketState)}, head)
	})
}

// ChannelInfo returns a channel and its members, valid or not at the head.
func (c *Chain) ChannelInfo(id protocol.ChannelID) (*settlement.ChannelInfo, error) {
	var out *settlement.ChannelInfo
	err := c.view(func(st contract.Store, head settlement.Head) error {
		ch, err := contract.GetChannel(st, id)
		if err != nil {
			return err
		}
		ms, err := contract.GetMembers(st, id)
		if err != nil {
			return err
		}
		out = &settlement.ChannelInfo{Channel: *ch, AtMs: head.TimeMs}
		for _, m := range ms {
			out.Members = append(out.Members, settlement.MemberInfo{Member: m, Valid: m.ValidAt(head.TimeMs, c.params.HeartbeatTTL)})
		}
		return nil
	})
	return out, err
}

// MemberInfo returns one member, valid or not at the head.
func (c *Chain) MemberInfo(id protocol.ChannelID, a protocol.Address) (*settlement.MemberInfo, error) {
	var out *settlement.MemberInfo
	err := c.view(func(st contract.Store, head settlement.Head) error {
		m, err := contract.GetMember(st, id, a)
		if err != nil {
			return err
		}
		out = &settlement.MemberInfo{Member: *m, Valid: m.ValidAt(head.TimeMs, c.params.HeartbeatTTL)}
		return nil
	})
	return out, err
}

// Departure returns how a channel's membership of join sequence number
// joinSeq ended (contract.ErrNoDeparture while it has not).
func (c *Chain) Departure(id protocol.ChannelID, joinSeq uint64) (*contract.Departure, error) {
	var out *contract.Departure
	err := c.view(func(st contract.Store, _ settlement.Head) error {
		dp, err := contract.GetDeparture(st, id, joinSeq)
		out = dp
		return err
	})
	return out, err
}

// EpochLeader returns who led a channel's epoch
// (contract.ErrNoEpochLeader while the channel has not reached it).
func (c *Chain) EpochLeader(id protocol.ChannelID, epoch uint64) (*contract.EpochLeader, error) {
	var out *contract.EpochLeader
	err := c.view(func(st contract.Store, _ settlement.Head) error {
		el, err := contract.GetEpochLeader(st, id, epoch)
		out = el
		return err
	})
	return out, err
}

// ProposalInfo returns a proposal and its votes.
func (c *Chain) ProposalInfo(id protocol.ChannelID, pid uint64) (*settlement.ProposalInfo, error) {
	var out *settlement.ProposalInfo
	err := c.view(func(st contract.Store, _ settlement.Head) error {
		p, err := contract.GetProposal(st, id, pid)
		if err != nil {
			return err
		}
		votes, err := contract.GetVotes(st, id, pid)
		if err != nil {
			return err
		}
		out = &settlement.ProposalInfo{Proposal: *p, Votes: votes}
		return nil
	})
	return out, err
}

// AccountInfo returns an account's money and the nonce its next tx needs,
// counting txs still pending.
func (c *Chain) AccountInfo(a protocol.Address) (*settlement.AccountInfo, error) {
	var out *settlement.AccountInfo
	err := c.db.View(func(tx *bolt.Tx) error {
		acc := contract.GetAccount(&boltStore{b: tx.Bucket(bucketState)}, c.params, a)
		var n uint64
		if v := tx.Bucket(bucketNonces).Get(a[:]); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		out = &settlement.AccountInfo{Account: *acc, NextNonce: n + 1}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	for _, p := range c.mu.pending {
		if p.tx.Sender == a && p.tx.Nonce >= out.NextNonce {
			out.NextNonce = p.tx.Nonce + 1
		}
	}
	c.mu.Unlock()
	return out, nil
}

// Code returns the code stored under hash.
func (c *Chain) Code(hash protocol.Hash) ([]byte, error) {
	var out []byte
	err := c.view(func(st contract.Store, _ settlement.Head) error {
		var err error
		out, err = contract.GetCode(st, hash)
		return err
	})
	return out, err
}

// ABI returns the ABI recorded with the channel's code.
func (c *Chain) ABI(id protocol.ChannelID) (*contract.ChannelABI, error) {
	var out *contract.ChannelABI
	err := c.view(func(st contract.Store, _ settlement.Head) error {
		var err error
		out, err = contract.GetABI(st, id)
		return err
	})
	return out, err
}

// SettledState returns the channel's settled state; with initial, the state
// it was created with.
func (c *Chain) SettledState(id protocol.ChannelID, initial bool) (protocol.State, error) {
	var out protocol.State
	err := c.view(func(st contract.Store, _ settlement.Head) error {
		var err error
		if initial {
			out, err = contract.GetInitialState(st, id)
		} else {
			out, err = contract.GetSettledState(st, id)
		}
		return err
	})
	return out, err
}

// Block returns the committed block at height.
func (c *Chain) Block(height uint64) (*Block, error) {
	var out *Block
	err := c.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketBlocks).Get(u64key(height))
		if raw == nil {
			return fmt.Errorf("%w: block %d", ErrNotFound, height)
		}
		var err error
		out, err = DecodeBlock(raw)
		return err
	})
	return out, err
}

// readEvents returns up to max events from id from on.
func (c *Chain) readEvents(from settlement.EventID, max int) ([]settlement.Event, error) {
	var out []settlement.Event
	err := c.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketEvents).Cursor()
		start := eventKey(from)
		for k, v := cur.Seek(start); k != nil && len(out) < max; k, v = cur.Next() {
			if bytes.Compare(k, start) < 0 {
				continue
			}
			ev, err := DecodeEvent(v)
			if err != nil {
				return fmt.Errorf("event %x: %w", k, err)
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// Watch streams events from id from on; see settlement.Chain.Watch.
func (c *Chain) Watch(ctx context.Context, from settlement.EventID) settlement.EventStream {
	return &eventStream{c: c, ctx: ctx, next: from}
}

type eventStream struct {
	c    *Chain
	ctx  context.Context
	next settlement.EventID
	buf  []settlement.Event
}

// Recv returns the next event, waiting for new blocks as needed.
func (s *eventStream) Recv() (settlement.Event, error) {
	for len(s.buf) == 0 {
		if err := s.ctx.Err(); err != nil {
			return settlement.Event{}, err
		}
		// Take the wake-up channel before reading so that a block committed
		// in between is not missed.
		s.c.mu.Lock()
		wake, closed := s.c.mu.newBlock, s.c.mu.closed
		s.c.mu.Unlock()
		if closed {
			return settlement.Event{}, ErrClosed
		}
		evs, err := s.c.readEvents(s.next, 512)
		if err != nil {
			return settlement.Event{}, err
		}
		if len(evs) > 0 {
			s.buf = evs
			break
		}
		select {
		case <-wake:
		case <-s.c.stopCh:
			return settlement.Event{}, ErrClosed
		case <-s.ctx.Done():
			return settlement.Event{}, s.ctx.Err()
		}
	}
	ev := s.buf[0]
	s.buf = s.buf[1:]
	s.next = ev.ID.Next()
	return ev, nil
}
