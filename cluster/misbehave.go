package cluster

import (
	"sync/atomic"

	"github.com/scraft/scraft/protocol"
)

// tamperFunc changes a batch this leader signed before it reaches Raft and
// reports whether it did (the batch is then signed again). It exists to
// test the followers' side of accountability: only tests and binaries
// built with the scraft_misbehave tag (misbehave_tag.go) ever set it.
type tamperFunc func(self protocol.Address, b *protocol.Batch) bool

// tamperHook is nil in every ordinary build: the leader signs what it
// executed.
var tamperHook atomic.Pointer[tamperFunc]

// tamperAt returns a tamperFunc that makes the leader self claim one more
// gas unit than it used for the entry at height, once.
func tamperAt(self protocol.Address, height uint64) tamperFunc {
	var done atomic.Bool
	return func(leader protocol.Address, b *protocol.Batch) bool {
		if leader != self || height < b.FirstHeight || height > b.LastHeight() || !done.CompareAndSwap(false, true) {
			return false
		}
		b.Results[height-b.FirstHeight].GasUsed++
		return true
	}
}

// tamper applies the hook, if any, to a batch this node signed.
func (c *Channel) tamper(b *protocol.Batch) {
	if h := tamperHook.Load(); h != nil && (*h)(c.me(), b) {
		c.logger.Warn("misbehaving: signing a batch with a tampered result", "first_height", b.FirstHeight)
		b.Sign(c.cfg.Key)
	}
}
