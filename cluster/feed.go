package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scraft/scraft/internal/backoff"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
)

// The chain feed: one Watch stream per node, fanned out by channel id to
// the channels the node hosts. A channel rereads its record from the chain
// (one Channel query) when the feed reports an event of it, when the feed
// resumed after a break, when it gains Raft leadership, and every
// chainResync as a safety net; its loops wait on the view rather than poll
// the chain.

const (
	// feedBuffer is how many events a channel's share of the feed holds;
	// beyond it events are dropped and the channel told to resync, so a
	// slow channel never holds up the others.
	feedBuffer = 64
	// feedBackoffMin and feedBackoffMax bound the wait before the feed
	// opens its stream again after a break (doubling while it keeps
	// failing).
	feedBackoffMin = 50 * time.Millisecond
	feedBackoffMax = 5 * time.Second
	// chainResyncPolls is the safety-net reread of a channel's record, in
	// ChainPollIntervals (5 s by default): the feed reports every change,
	// this catches anything a chain failed to report.
	chainResyncPolls = 50
)

// chainFeed is the node's one stream of chain events. It starts with the
// first subscription, from the chain's head; after a break it opens the
// stream again from the event after the last one it delivered, with
// backoff, and then tells every subscriber to resync (its view may have
// missed a change while the stream was down). Safe for concurrent use.
type chainFeed struct {
	chain   Chain
	logger  hclog.Logger
	resumes prometheus.Counter
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{} // closed when run returns
	// watching is closed once the first stream is open: events from then
	// on reach the subscribers.
	watching chan struct{}

	mu struct {
		sync.Mutex
		started, closed bool
		subs            map[protocol.ChannelID]*feedSub
	}
}

// feedSub is one channel's share of the feed.
type feedSub struct {
	feed *chainFeed
	id   protocol.ChannelID
	// events holds the channel's events in order; when it is full an
	// event is dropped and resync signalled instead.
	events chan settlement.Event
	// resync (one slot) says the subscriber may have missed events and
	// must reread the chain.
	resync chan struct{}
}

func newChainFeed(chain Chain, logger hclog.Logger, resumes prometheus.Counter) *chainFeed {
	f := &chainFeed{chain: chain, logger: logger, resumes: resumes, done: make(chan struct{}), watching: make(chan struct{})}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.mu.subs = make(map[protocol.ChannelID]*feedSub)
	return f
}

// subscribe returns the channel's share of the feed, and starts the feed
// if it is the first. After close it returns a share that never reports.
func (f *chainFeed) subscribe(id protocol.ChannelID) *feedSub {
	s := &feedSub{feed: f, id: id, events: make(chan settlement.Event, feedBuffer), resync: make(chan struct{}, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.closed {
		return s
	}
	f.mu.subs[id] = s
	if !f.mu.started {
		f.mu.started = true
		go f.run()
	}
	return s
}

// unsubscribe ends s's share of the feed.
func (s *feedSub) unsubscribe() {
	f := s.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.subs[s.id] == s {
		delete(f.mu.subs, s.id)
	}
}

// close stops the feed and waits for it. It is safe to call more than once.
func (f *chainFeed) close() {
	f.mu.Lock()
	f.mu.closed = true
	started := f.mu.started
	f.mu.Unlock()
	f.cancel()
	if started {
		<-f.done
	}
}

// run reads the stream and hands each event to its channel's share.
func (f *chainFeed) run() {
	defer close(f.done)
	bo := backoff.New(backoff.Policy{Initial: feedBackoffMin, Max: feedBackoffMax})
	wait := func(err error, what string) bool {
		if f.ctx.Err() != nil {
			return false
		}
		f.logger.Debug(what, "error", err)
		return bo.Wait(f.ctx)
	}
	// The stream starts at the head's block: what happened before, a
	// channel reads from its record when it subscribes.
	var from settlement.EventID
	for {
		ctx, cancel := context.WithTimeout(f.ctx, 2*time.Second)
		h, err := f.chain.Head(ctx)
		cancel()
		if err == nil {
			from = settlement.EventID{Block: h.Height}
			break
		}
		if !wait(err, "cannot read the chain's head") {
			return
		}
	}
	first := true
	for {
		ctx, cancel := context.WithCancel(f.ctx)
		st, err := f.chain.Watch(ctx, from)
		if err == nil {
			if first {
				first = false
				close(f.watching)
			} else {
				f.logger.Debug("chain event stream resumed", "from", from)
				f.resumes.Inc()
				f.resyncAll()
			}
			for {
				var ev settlement.Event
				if ev, err = st.Recv(); err != nil {
					break
				}
				bo.Reset()
				from = ev.ID.Next()
				f.deliver(ev)
			}
		}
		cancel()
		if !wait(err, "chain event stream broken") {
			return
		}
	}
}

// deliver hands ev to its channel's share, if the node hosts the channel.
func (f *chainFeed) deliver(ev settlement.Event) {
	var zero protocol.ChannelID
	if ev.Channel == zero {
		return
	}
	f.mu.Lock()
	s := f.mu.subs[ev.Channel]
	f.mu.Unlock()
	if s == nil {
		return
	}
	select {
	case s.events <- ev:
	default:
		s.signalResync()
	}
}

// resyncAll tells every subscriber to reread the chain.
func (f *chainFeed) resyncAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.mu.subs {
		s.signalResync()
	}
}

func (s *feedSub) signalResync() {
	select {
	case s.resync <- struct{}{}:
	default:
	}
}

// chainResync is how often a channel rereads its record without news.
func (c *Channel) chainResync() time.Duration {
	return chainResyncPolls * c.cfg.ChainPollInterval
}

// runChainView keeps the channel's chain view current from its share of
// the node's feed: one Channel query when it subscribes, then one for a
// burst of the channel's events, for a resync the feed asks for, and
// every chainResync; after a failed read it tries again every
// ChainPollInterval. The view tells the other loops (chainView.current,
// chainView.refreshed).
func (c *Channel) runChainView(ctx context.Context) {
	sub := c.node.feed.subscribe(c.id)
	defer sub.unsubscribe()
	resync := time.NewTicker(c.chainResync())
	defer resync.Stop()
	stale := true
	for {
		var retry <-chan time.Time
		if stale {
			if err := c.refreshChain(); err == nil {
				stale = false
			} else if ctx.Err() == nil {
				c.logger.Debug("chain read failed", "error", err)
				retry = time.After(c.cfg.ChainPollInterval)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-sub.events:
			// One read covers every event already queued.
			for drained := false; !drained; {
				select {
				case <-sub.events:
				default:
					drained = true
				}
			}
			stale = true
		case <-sub.resync:
			stale = true
		case <-resync.C:
			stale = true
		case <-retry:
		}
	}
}
