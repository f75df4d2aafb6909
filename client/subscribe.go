package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/scraft/scraft/clientapi"
	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/internal/backoff"
	"github.com/scraft/scraft/protocol"
)

// Update is one item of a subscription: a snapshot of the channel state or
// the verified outcome of the next height.
type Update struct {
	// Snapshot, when set, replaces the state: the outcomes that follow
	// start at Snapshot.Height + 1. It comes first when subscribing from
	// height 0, and again if a node cannot replay from the height a
	// resumed subscription held.
	Snapshot *protocol.Snapshot
	// Outcome is the next height's outcome (nil with a Snapshot).
	Outcome *protocol.Outcome
}

// Subscription delivers a channel's verified outcomes in height order,
// without gaps, across reconnects and node failovers: when its stream
// breaks, or it falls behind, it subscribes again after the last height it
// holds. It checks that each outcome's digest chains from the previous one.
//
// Next is called from one goroutine; Close from any.
type Subscription struct {
	c  *Client
	ch protocol.ChannelID

	notify chan struct{}

	mu struct {
		sync.Mutex
		queue []Update
		// height and digest are those of the last update queued; digest is
		// known once a snapshot or a first outcome came.
		height     uint64
		digest     protocol.Hash
		haveDigest bool
		// link and id are the node subscription feeding the queue; paused
		// means none does and Next must subscribe again.
		link    *link
		id      uint64
		paused  bool
		started bool
		retries int
		err     error
		closed  bool
	}
}

// Subscribe starts a subscription to the channel's outcomes after
// fromHeight; with fromHeight 0 the first Update is a snapshot of the
// current state. It returns once the node has accepted the subscription.
func (c *Client) Subscribe(ctx context.Context, ch protocol.ChannelID, fromHeight uint64) (*Subscription, error) {
	s := &Subscription{c: c, ch: ch, notify: make(chan struct{}, 1)}
	s.mu.height = fromHeight
	s.mu.paused = true
	for {
		if err := s.resume(ctx); err != nil {
			s.Close()
			return nil, err
		}
		s.mu.Lock()
		started, err, paused := s.mu.started, s.mu.err, s.mu.paused
		s.mu.Unlock()
		switch {
		case err != nil:
			s.Close()
			return nil, err
		case started:
			return s, nil
		case paused:
			continue // the stream broke before the first answer
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			s.Close()
			return nil, ctx.Err()
		case <-c.closed:
			return nil, ErrClosed
		}
	}
}

// Height returns the last height the subscription holds (delivered or
// queued): where it resumes from.
func (s *Subscription) Height() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.height
}

// Next returns the next update, waiting for it until ctx ends. It returns
// ErrClosed after Close, and the node's error when the subscription cannot
// go on (the channel does not exist any more, the client is no longer a
// member) or ErrInconsistent.
func (s *Subscription) Next(ctx context.Context) (Update, error) {
	for {
		s.mu.Lock()
		if len(s.mu.queue) > 0 {
			u := s.mu.queue[0]
			s.mu.queue[0] = Update{}
			s.mu.queue = s.mu.queue[1:]
			s.mu.Unlock()
			return u, nil
		}
		err, closed, paused := s.mu.err, s.mu.closed, s.mu.paused
		s.mu.Unlock()
		switch {
		case closed:
			return Update{}, ErrClosed
		case err != nil:
			return Update{}, err
		case paused:
			if err := s.resume(ctx); err != nil {
				return Update{}, err
			}
			continue
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Update{}, ctx.Err()
		case <-s.c.closed:
			return Update{}, ErrClosed
		}
	}
}

// Close ends the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return
	}
	s.mu.closed = true
	l, id := s.mu.link, s.mu.id
	s.mu.link, s.mu.queue = nil, nil
	s.mu.Unlock()
	s.wake()
	if l != nil {
		s.stopOn(l, id)
	}
}

func (s *Subscription) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// stopOn ends the node subscription id on l, in the background.
func (s *Subscription) stopOn(l *link, id uint64) {
	l.removeSub(id)
	if l.failed() {
		return
	}
	s.c.wg.Add(1)
	go func() {
		defer s.c.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.c.cfg.DialTimeout)
		defer cancel()
		_, _ = l.roundTrip(ctx, &clientpb.ClientMessage{Body: &clientpb.ClientMessage_Unsubscribe{
			Unsubscribe: &clientpb.UnsubscribeRequest{SubscriptionId: id},
		}})
	}()
}

// resume subscribes on the current link after the last height held,
// pausing first after repeated failures.
func (s *Subscription) resume(ctx context.Context) error {
	s.mu.Lock()
	retries := s.mu.retries
	s.mu.Unlock()
	if retries > 0 {
		d := s.c.cfg.RetryDelay << min(retries-1, 6)
		if !backoff.Sleep(ctx, min(d, s.c.cfg.MaxRetryDelay), s.c.closed) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return ErrClosed
		}
	}
	l, err := s.c.link(ctx)
	if err != nil {
		return err
	}
	id := s.c.nextID.Add(1)
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if !s.mu.paused {
		s.mu.Unlock()
		return nil
	}
	from := s.mu.height
	s.mu.link, s.mu.id, s.mu.paused = l, id, false
	s.mu.retries++
	s.mu.Unlock()
	if !l.addSub(id, s) {
		s.linkLost(l)
		return nil
	}
	err = l.send(&clientpb.ClientMessage{Id: id, Body: &clientpb.ClientMessage_Subscribe{Subscribe: &clientpb.SubscribeRequest{
		Channel: s.ch[:], FromHeight: from,
	}}})
	if err != nil {
		s.linkLost(l)
	}
	return nil
}

// linkLost pauses the subscription if l was feeding it.
func (s *Subscription) linkLost(l *link) {
	s.mu.Lock()
	if s.mu.link == l {
		s.mu.link, s.mu.paused = nil, true
	}
	s.mu.Unlock()
	s.wake()
}

// deliver takes one message of node subscription id on l. It runs on l's
// receiving goroutine and never blocks.
func (s *Subscription) deliver(l *link, id uint64, m *clientpb.ServerMessage) {
	defer s.wake()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed || s.mu.link != l || s.mu.id != id {
		return
	}
	if e := clientapi.ErrorFromPB(m.GetError()); e != nil {
		l.removeSub(id)
		s.mu.link = nil
		if e.Code == protocol.CodeSlowSubscriber || e.Code == protocol.CodeBusy || e.Code.Retryable() {
			s.mu.paused = true
			return
		}
		s.mu.err = e
		return
	}
	switch b := m.GetBody().(type) {
	case *clientpb.ServerMessage_Snapshot:
		snap, err := clientapi.SnapshotFromPB(b.Snapshot)
		if err != nil {
			s.failLocked(l, id, err)
			return
		}
		s.mu.started, s.mu.retries = true, 0
		if snap == nil {
			return // resumed where we asked
		}
		s.mu.queue = append(s.mu.queue, Update{Snapshot: snap})
		s.mu.height, s.mu.digest, s.mu.haveDigest = snap.Height, snap.Digest, true
	case *clientpb.ServerMessage_Updates:
		for _, p := range b.Updates.GetOutcomes() {
			o, err := clientapi.OutcomeFromPB(p)
			if err == nil && o.Height != s.mu.height+1 {
				err = fmt.Errorf("%w: height %d after %d", ErrInconsistent, o.Height, s.mu.height)
			}
			if err == nil && s.mu.haveDigest && protocol.NextDigest(s.mu.digest, o.Hash, &o.Result) != o.Digest {
				err = fmt.Errorf("%w: digest at height %d does not chain", ErrInconsistent, o.Height)
			}
			if err != nil {
				s.failLocked(l, id, err)
				return
			}
			s.mu.queue = append(s.mu.queue, Update{Outcome: o})
			s.mu.height, s.mu.digest, s.mu.haveDigest = o.Height, o.Digest, true
		}
		if len(s.mu.queue) >= s.c.cfg.SubscriptionBuffer {
			// The reader is behind: stop the node's feed and resume from
			// the last height held once Next has emptied the queue.
			s.mu.link, s.mu.paused = nil, true
			s.stopOn(l, id)
		}
	}
}

// failLocked ends the subscription with err (the node sent something that
// cannot be right).
func (s *Subscription) failLocked(l *link, id uint64, err error) {
	if !errors.Is(err, ErrInconsistent) {
		err = fmt.Errorf("%w: %v", ErrInconsistent, err)
	}
	s.mu.err = err
	s.mu.link = nil
	s.stopOn(l, id)
}
