package transport

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/transport/raftpb"
)

// AppendEntriesPipeline implements raft.Transport. The pipeline is one gRPC
// bidi stream to target: requests go out in order, the target handles them
// one by one and answers in the same order, and at most Config.MaxInFlight
// requests are unanswered at a time (AppendEntries blocks for a slot, which
// is raft's back-pressure). Any failure — a send error, a response later
// than Config.RPCTimeout, the stream ending — fails the pending request and
// every later one; raft then closes the pipeline and falls back to plain
// AppendEntries.
func (c *ChannelTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	client, err := c.client(c.ctx, target)
	if err != nil {
		return nil, c.rpcError("AppendEntriesPipeline", target, err)
	}
	ctx, cancel := context.WithCancel(c.ctx)
	// Opening the stream waits for the connection; bound it.
	opening := time.AfterFunc(c.srv.cfg.RPCTimeout, cancel)
	stream, err := client.AppendEntriesPipeline(ctx)
	if !opening.Stop() && err == nil {
		err = context.DeadlineExceeded
	}
	if err == nil {
		err = c.checkServer(id, target, stream.Context())
	}
	if err != nil {
		cancel()
		return nil, c.rpcError("AppendEntriesPipeline", target, err)
	}
	n := c.srv.cfg.MaxInFlight
	p := &pipeline{
		c:          c,
		target:     target,
		stream:     stream,
		cancel:     cancel,
		slots:      make(chan struct{}, n),
		inflight:   make(chan *appendFuture, n),
		doneCh:     make(chan raft.AppendFuture, n),
		shutdownCh: make(chan struct{}),
	}
	if !c.addPipeline(p) {
		cancel()
		return nil, c.rpcError("AppendEntriesPipeline", target, ErrClosed)
	}
	p.wg.Add(1)
	go p.receive()
	return p, nil
}

// pipeline is a raft.AppendPipeline over one stream. raft calls
// AppendEntries from one goroutine and reads Consumer from another; receive
// is the only goroutine calling stream.Recv, AppendEntries (under sendMu) the
// only one calling stream.Send.
type pipeline struct {
	c      *ChannelTransport
	target raft.ServerAddress
	stream raftpb.Raft_AppendEntriesPipelineClient
	cancel context.CancelFunc

	slots    chan struct{}          // one token per unanswered request
	inflight chan *appendFuture     // sent, waiting for their response, in order
	doneCh   chan raft.AppendFuture // answered, for raft
	sendMu   sync.Mutex
	wg       sync.WaitGroup

	shutdownCh chan struct{}
	closeOnce  sync.Once

	mu struct {
		sync.Mutex
		err error // the first failure; every later request fails with it
	}
}

// AppendEntries implements raft.AppendPipeline.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	select {
	case <-p.shutdownCh:
		return nil, raft.ErrPipelineShutdown
	default:
	}
	if err := p.failure(); err != nil {
		return nil, err
	}
	select {
	case p.slots <- struct{}{}:
	case <-p.shutdownCh:
		return nil, raft.ErrPipelineShutdown
	}
	f := &appendFuture{start: time.Now(), args: args, resp: resp, done: make(chan struct{})}
	// Sending and queueing happen under sendMu so that the queue is in
	// stream order even if AppendEntries is called concurrently.
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	err := p.c.fault(p.c.ctx, p.target)
	if err == nil {
		err = p.stream.Send(encodeAppendEntriesRequest(p.c.id, args))
	}
	if err != nil {
		<-p.slots
		// A cut message breaks the pipeline as a lost one would: raft falls
		// back to plain AppendEntries, which the same faults govern.
		err = p.fail(p.c.rpcError("AppendEntriesPipeline", p.target, err))
		return nil, err
	}
	select {
	case p.inflight <- f: // never blocks: as many places as slots
		return f, nil
	case <-p.shutdownCh:
		return nil, raft.ErrPipelineShutdown
	}
}

// Consumer implements raft.AppendPipeline.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.doneCh }

// Close implements raft.AppendPipeline: it cancels the stream, fails the
// requests still waiting and waits for the receiving goroutine. Safe to call
// more than once.
func (p *pipeline) Close() error {
	p.closeOnce.Do(func() {
		close(p.shutdownCh)
		p.cancel()
		p.wg.Wait()
		for {
			select {
			case f := <-p.inflight:
				f.respond(raft.ErrPipelineShutdown)
			default:
				p.c.removePipeline(p)
				return
			}
		}
	})
	return nil
}

// receive reads the responses in order and completes the oldest request
// with each; a response that takes longer than RPCTimeout cancels the
// stream.
func (p *pipeline) receive() {
	defer p.wg.Done()
	watchdog := time.AfterFunc(time.Hour, p.cancel)
	watchdog.Stop()
	defer watchdog.Stop()
	for {
		var f *appendFuture
		select {
		case f = <-p.inflight:
		case <-p.shutdownCh:
			return
		}
		err := p.failure()
		if err == nil {
			watchdog.Reset(p.c.srv.cfg.RPCTimeout)
			var out *raftpb.AppendEntriesResponse
			out, err = p.stream.Recv()
			if watchdog.Stop() && err == nil {
				decodeAppendEntriesResponse(out, f.resp)
			} else {
				if err == nil {
					err = fmt.Errorf("no response within %s", p.c.srv.cfg.RPCTimeout)
				}
				err = p.fail(p.c.rpcError("AppendEntriesPipeline", p.target, err))
			}
		}
		<-p.slots
		f.respond(err)
		select {
		case p.doneCh <- f:
		case <-p.shutdownCh:
			return
		}
	}
}

func (p *pipeline) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.err
}

// fail records the pipeline's first failure and returns it.
func (p *pipeline) fail(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.err == nil {
		p.mu.err = err
		p.cancel()
	}
	return p.mu.err
}

// appendFuture is a raft.AppendFuture.
type appendFuture struct {
	start time.Time
	args  *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
	err   error
	done  chan struct{}
}

func (f *appendFuture) respond(err error) {
	f.err = err
	close(f.done)
}

// Error implements raft.Future: it waits for the response.
func (f *appendFuture) Error() error {
	<-f.done
	return f.err
}

func (f *appendFuture) Start() time.Time                      { return f.start }
func (f *appendFuture) Request() *raft.AppendEntriesRequest   { return f.args }
func (f *appendFuture) Response() *raft.AppendEntriesResponse { return f.resp }
