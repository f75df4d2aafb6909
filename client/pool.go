package client

import (
	"sync"

	"google.golang.org/grpc"
)

// Pool shares connections among many Clients of one process (a game
// server with a Client per player, a gateway, a load generator): the
// Clients that set the same Pool in their Config reach each node over one
// HTTP/2 connection that carries all their streams. Each Client still has
// its own stream, bound to its own key, and fails over on its own.
//
// Sharing saves both ends a connection each (its goroutines, buffers and
// keepalive pings), and under load it lets one system call carry the
// messages of many streams: 256 clients calling one after the other cost
// about a third of the CPU per call over 3 shared connections as over 256
// (BenchmarkStreamEcho in package transport).
//
// A connection is made with the Config of the Client that needed it
// first, so the Clients of one Pool should share a Config. It is closed
// when the last Client using it closes. A Pool needs no closing itself;
// it is safe for concurrent use, and the zero Pool is ready to use.
type Pool struct {
	mu    sync.Mutex
	conns map[string]*pooledConn
}

type pooledConn struct {
	conn *grpc.ClientConn
	refs int
}

// NewPool returns an empty Pool.
func NewPool() *Pool { return &Pool{} }

// acquire returns the pool's connection to addr, made with dial if there
// is none, and counts one more user of it.
func (p *Pool) acquire(addr string, dial func(string) (*grpc.ClientConn, error)) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		p.conns = make(map[string]*pooledConn)
	}
	if pc, ok := p.conns[addr]; ok {
		pc.refs++
		return pc.conn, nil
	}
	conn, err := dial(addr)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = &pooledConn{conn: conn, refs: 1}
	return conn, nil
}

// release counts one user of conn less and closes it after the last.
func (p *Pool) release(addr string, conn *grpc.ClientConn) {
	p.mu.Lock()
	pc, ok := p.conns[addr]
	if !ok || pc.conn != conn {
		p.mu.Unlock()
		return
	}
	pc.refs--
	last := pc.refs == 0
	if last {
		delete(p.conns, addr)
	}
	p.mu.Unlock()
	if last {
		_ = conn.Close()
	}
}

// Len reports how many connections the pool holds: one per node address
// some Client of the pool is using.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}
