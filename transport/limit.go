package transport

import (
	"net"
	"sync"
	"sync/atomic"
)

// ConnStats counts the connections of a Server's listener.
type ConnStats struct {
	// Open is the number of connections held now.
	Open int64
	// Refused counts the connections closed at once since start because
	// Config.MaxConnections were open.
	Refused int64
}

// ConnStats returns the listener's connection counts.
func (s *Server) ConnStats() ConnStats {
	l, ok := s.ln.(*limitListener)
	if !ok {
		return ConnStats{}
	}
	return ConnStats{Open: l.open.Load(), Refused: l.refused.Load()}
}

// limitListener holds at most max connections open. It closes one more at
// once instead of leaving it in the kernel's backlog (as x/net/netutil's
// LimitListener does): the dialer learns at once and retries with backoff,
// and Accept never stalls, so the connections already held keep being
// served.
type limitListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused atomic.Int64
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	return &limitListener{Listener: ln, max: int64(max)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.refused.Add(1)
			c.Close()
			continue
		}
		return &limitConn{Conn: c, release: func() { l.open.Add(-1) }}, nil
	}
}

// limitConn gives its slot back on its first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
