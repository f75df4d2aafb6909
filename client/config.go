package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/scraft/scraft/protocol"
)

// ErrNoNodeKeys is returned by Dial when the Config pins no node key: a
// client that does not know which keys its nodes hold cannot tell a node
// from an impostor that relays or forges its answers.
var ErrNoNodeKeys = errors.New("client: no node key pinned (Config.NodeKeys): give the member addresses of the nodes, or Plaintext for a node without TLS")

// Config configures a Client. Start from DefaultConfig.
type Config struct {
	// DialTimeout bounds connecting to one node and binding the stream.
	// Default 5s.
	DialTimeout time.Duration

	// RetryDelay is the first pause before trying again when no node could
	// be reached or the node could not serve a request for now
	// (unavailable, not ready, shutting down); it doubles up to
	// MaxRetryDelay. Defaults 25ms and 1s.
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration

	// KeepaliveTime and KeepaliveTimeout find a node that stopped
	// answering while its connection stays open (a hung process, a
	// half-open TCP connection): after KeepaliveTime without a byte from
	// the node the client pings it, and when no answer comes within
	// KeepaliveTimeout it drops the connection and moves to the next
	// address, sending the request in flight again. Defaults 10s (gRPC's
	// least) and 5s.
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration

	// SubscriptionBuffer bounds the outcomes a Subscription holds that
	// Next has not returned yet. When it is full the subscription is ended
	// on the node and resumed from the last height held once Next has
	// caught up, so a slow reader never makes the node buffer for it.
	// Default 4096.
	SubscriptionBuffer int

	// MaxMessageSize bounds one message from a node (a snapshot can be
	// large). Default 64 MiB. Unit: bytes.
	MaxMessageSize int

	// Logger receives the client's logs. Default: a null logger.
	Logger hclog.Logger

	// NodeKeys are the member addresses of the nodes this client may talk
	// to. Nodes speak TLS with a certificate whose key is their member key
	// (protocol/tlsid); the client accepts a node only when that key's
	// address is one of NodeKeys, and fails the handshake otherwise. There
	// is no trust on first use: Dial refuses an empty NodeKeys
	// (ErrNoNodeKeys) unless Plaintext is set. Clients that share a Pool
	// share connections, so they should pin the same keys. Default none.
	NodeKeys []protocol.Address

	// Plaintext makes the client speak plaintext gRPC, for a node that
	// serves no TLS (an in-process node in tests). NodeKeys are then not
	// checked. Default false.
	Plaintext bool

	// DialOptions are appended to the options of every connection.
	// Default none.
	DialOptions []grpc.DialOption

	// Pool, when set, shares connections among the Clients that use it:
	// one connection per node carries all their streams (see Pool).
	// Default nil: each Client has connections of its own.
	Pool *Pool

	// ComplainAfter, when positive, makes the client file a censorship
	// complaint on Chain against the channel's leader (as the node
	// reports it) about any of its own txs that is not committed within
	// ComplainAfter of its sending; the call then goes on waiting, for the
	// leader must order the tx, or show why it cannot, within the
	// channel's censorship window, or the channel closes. A tx is
	// complained about once. Default 0: never.
	ComplainAfter time.Duration

	// Chain is the settlement chain the client files complaints with; it
	// must sign with the client's key (the chain takes complaints about a
	// member's own txs only). A settlement.Chain satisfies it, such as
	// the devchain client. Required when ComplainAfter is set. Default nil.
	Chain Chain
}

// Chain is the part of the settlement chain the client uses: filing a
// proposal of the channel whose data is the canonical encoding of the
// kind's payload. A settlement.Chain client satisfies it; the SDK names
// no chain client of its own, so an application links only the one it
// picks.
type Chain interface {
	CreateProposal(ctx context.Context, id protocol.ChannelID, kind protocol.ProposalKind, data []byte) (uint64, error)
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		DialTimeout:        5 * time.Second,
		RetryDelay:         25 * time.Millisecond,
		MaxRetryDelay:      time.Second,
		KeepaliveTime:      10 * time.Second,
		KeepaliveTimeout:   5 * time.Second,
		SubscriptionBuffer: 4096,
		MaxMessageSize:     64 << 20,
		Logger:             hclog.NewNullLogger(),
	}
}

// Validate reports the first field that is out of range.
func (c *Config) Validate() error {
	switch {
	case c.DialTimeout <= 0:
		return fmt.Errorf("client: DialTimeout (%s) must be positive", c.DialTimeout)
	case c.RetryDelay <= 0 || c.MaxRetryDelay < c.RetryDelay:
		return fmt.Errorf("client: RetryDelay (%s) must be positive and not above MaxRetryDelay (%s)", c.RetryDelay, c.MaxRetryDelay)
	case c.KeepaliveTime < 10*time.Second:
		return fmt.Errorf("client: KeepaliveTime (%s) must be at least 10s (gRPC pings no more often)", c.KeepaliveTime)
	case c.KeepaliveTimeout <= 0:
		return fmt.Errorf("client: KeepaliveTimeout (%s) must be positive", c.KeepaliveTimeout)
	case c.SubscriptionBuffer < 1:
		return fmt.Errorf("client: SubscriptionBuffer (%d) must be at least 1", c.SubscriptionBuffer)
	case c.MaxMessageSize < 64<<10:
		return fmt.Errorf("client: MaxMessageSize (%d) must be at least 64 KiB", c.MaxMessageSize)
	case c.Logger == nil:
		return fmt.Errorf("client: Logger is nil")
	case len(c.NodeKeys) == 0 && !c.Plaintext:
		return ErrNoNodeKeys
	case c.ComplainAfter < 0:
		return fmt.Errorf("client: ComplainAfter (%s) cannot be negative", c.ComplainAfter)
	case c.ComplainAfter > 0 && c.Chain == nil:
		return fmt.Errorf("client: ComplainAfter (%s) needs a Chain to file complaints with", c.ComplainAfter)
	}
	return nil
}
