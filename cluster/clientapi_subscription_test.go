package cluster

import (
	"context"
	"errors"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// TestSubscriptionGathersLiveBatches checks that a Next returns the live
// batches waiting behind the first one in one slice, in order, without the
// heights at or below the feed's start, bounded by backlogChunk; and that
// a feed closed behind them reports the drop only once they are out.
func TestSubscriptionGathersLiveBatches(t *testing.T) {
	ctx := context.Background()
	batch := func(from, to uint64) Applied {
		var a Applied
		for h := from; h <= to; h++ {
			a.Outcomes = append(a.Outcomes, protocol.Outcome{Height: h})
		}
		return a
	}
	heights := func(outs []protocol.Outcome) (hs []uint64) {
		for _, o := range outs {
			hs = append(hs, o.Height)
		}
		return hs
	}
	consecutive := func(outs []protocol.Outcome, from uint64) bool {
		for i, o := range outs {
			if o.Height != from+uint64(i) {
				return false
			}
		}
		return true
	}

	t.Run("waiting batches in one Next", func(t *testing.T) {
		ch := make(chan Applied, 8)
		s := &subscription{ch: ch, cancel: func() {}, after: 10}
		ch <- batch(9, 12) // 9 and 10 were in the backlog
		ch <- batch(13, 13)
		ch <- batch(14, 16)
		outs, err := s.Next(ctx)
		if err != nil || len(outs) != 6 || !consecutive(outs, 11) {
			t.Fatalf("Next: %v, %v; want 11..16", heights(outs), err)
		}
		ch <- batch(17, 17)
		if outs, err := s.Next(ctx); err != nil || len(outs) != 1 || outs[0].Height != 17 {
			t.Fatalf("Next after: %v, %v", heights(outs), err)
		}
	})

	t.Run("bounded by backlogChunk", func(t *testing.T) {
		ch := make(chan Applied, 8)
		s := &subscription{ch: ch, cancel: func() {}}
		per := uint64(backlogChunk / 2)
		for i := range uint64(4) {
			ch <- batch(1+i*per, (i+1)*per)
		}
		var all []protocol.Outcome
		for len(all) < 4*int(per) {
			outs, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(outs) > backlogChunk {
				t.Fatalf("%d outcomes in one Next, at most %d", len(outs), backlogChunk)
			}
			all = append(all, outs...)
		}
		if !consecutive(all, 1) {
			t.Fatalf("heights %v", heights(all))
		}
	})

	t.Run("drop reported after the waiting batches", func(t *testing.T) {
		ch := make(chan Applied, 8)
		s := &subscription{ch: ch, cancel: func() {}}
		ch <- batch(1, 2)
		ch <- batch(3, 3)
		close(ch)
		outs, err := s.Next(ctx)
		if err != nil || len(outs) != 3 || !consecutive(outs, 1) {
			t.Fatalf("Next: %v, %v; want 1..3", heights(outs), err)
		}
		if _, err := s.Next(ctx); !errors.Is(err, protocol.ErrSlowSubscriber) {
			t.Fatalf("closed feed: %v", err)
		}
	})
}
