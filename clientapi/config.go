package clientapi

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config configures the client API (Service). Start from
// DefaultConfig.
type Config struct {
	// Addresses are the "host:port" addresses clients may dial this node
	// at; a Bind signed for another address is refused. The first is sent
	// in the Challenge.
	// Required (at least one).
	Addresses []string

	// MaxStreams bounds the client streams open on this node at once, bound
	// or not; one more is ended at once with protocol.CodeBusy (gRPC
	// RESOURCE_EXHAUSTED) and counted in Stats.StreamsRefused. Default 1024.
	MaxStreams int

	// MaxUnboundMessageBytes bounds each message a stream sends before its
	// Bind succeeds (the Bind itself is about 150 bytes); a larger one ends
	// the stream with protocol.CodeTooLarge. Once bound, only the server's
	// MaxMessageSize and MaxTxBytes apply. Default 4 KiB. Unit: bytes.
	MaxUnboundMessageBytes int

	// MaxInFlight bounds the requests one stream may have unanswered
	// (calls waiting for commit, leave, close, a subscription's setup);
	// one more is answered protocol.CodeBusy at once. Default 64.
	MaxInFlight int

	// MaxChannelInFlight bounds the calls in flight to one channel from all
	// streams of this node together; one more is answered protocol.CodeBusy at
	// once. Default 4096.
	MaxChannelInFlight int

	// MaxSubscriptions bounds the live subscriptions of one stream.
	// Default 16.
	MaxSubscriptions int

	// SendQueue bounds the answers queued for sending on one stream. When
	// it is full, answers wait and the stream stops reading requests (gRPC
	// flow control then slows the client). Subscriptions do not use it:
	// each hands the stream's sender one message at a time, and what comes
	// meanwhile waits in its own bounded buffer in the ChannelAPI (which
	// drops it when it falls too far behind) and goes out together in the
	// next message. Default 256 messages.
	SendQueue int

	// MaxTxBytes bounds the canonical encoding of one call's signed tx.
	// Default 80 KiB: protocol.MaxArgsLen (64 KiB) plus the other fields.
	// Unit: bytes.
	MaxTxBytes int

	// MaxUpdateOutcomes bounds the outcomes in one Updates message; longer
	// runs are split. Default 256.
	MaxUpdateOutcomes int

	// MaxSnapshotBytes bounds the encoded state of a subscription's
	// snapshot; a larger state is answered protocol.CodeTooLarge. Default 48 MiB,
	// below the Server's MaxMessageSize. Unit: bytes.
	MaxSnapshotBytes int

	// BindTimeout is how long a new stream may take to bind before it is
	// closed. Default 10s.
	BindTimeout time.Duration

	// CallTimeout bounds how long a call waits for its commit; a client's
	// own deadline may end it earlier. Default 30s.
	CallTimeout time.Duration

	// Logger receives the client API's logs. Default: a null logger.
	Logger hclog.Logger
}

// DefaultConfig returns a Config with every default filled in;
// Addresses still needs setting.
func DefaultConfig() Config {
	return Config{
		MaxStreams:             1024,
		MaxUnboundMessageBytes: 4 << 10,
		MaxInFlight:            64,
		MaxChannelInFlight:     4096,
		MaxSubscriptions:       16,
		SendQueue:              256,
		MaxTxBytes:             80 << 10,
		MaxUpdateOutcomes:      256,
		MaxSnapshotBytes:       48 << 20,
		BindTimeout:            10 * time.Second,
		CallTimeout:            30 * time.Second,
		Logger:                 hclog.NewNullLogger(),
	}
}

// Validate reports the first field that is out of range.
func (c *Config) Validate() error {
	switch {
	case len(c.Addresses) == 0:
		return fmt.Errorf("clientapi: client API needs at least one address in Addresses")
	case c.MaxStreams < 1:
		return fmt.Errorf("clientapi: MaxStreams (%d) must be at least 1", c.MaxStreams)
	case c.MaxUnboundMessageBytes < 512:
		return fmt.Errorf("clientapi: MaxUnboundMessageBytes (%d) must be at least 512, room for a Bind", c.MaxUnboundMessageBytes)
	case c.MaxInFlight < 1:
		return fmt.Errorf("clientapi: MaxInFlight (%d) must be at least 1", c.MaxInFlight)
	case c.MaxChannelInFlight < c.MaxInFlight:
		return fmt.Errorf("clientapi: MaxChannelInFlight (%d) cannot be below MaxInFlight (%d)", c.MaxChannelInFlight, c.MaxInFlight)
	case c.MaxSubscriptions < 1:
		return fmt.Errorf("clientapi: MaxSubscriptions (%d) must be at least 1", c.MaxSubscriptions)
	case c.SendQueue < 1:
		return fmt.Errorf("clientapi: SendQueue (%d) must be at least 1", c.SendQueue)
	case c.MaxTxBytes < 1024:
		return fmt.Errorf("clientapi: MaxTxBytes (%d) must be at least 1 KiB", c.MaxTxBytes)
	case c.MaxUpdateOutcomes < 1:
		return fmt.Errorf("clientapi: MaxUpdateOutcomes (%d) must be at least 1", c.MaxUpdateOutcomes)
	case c.MaxSnapshotBytes < 1024:
		return fmt.Errorf("clientapi: MaxSnapshotBytes (%d) must be at least 1 KiB", c.MaxSnapshotBytes)
	case c.BindTimeout <= 0 || c.CallTimeout <= 0:
		return fmt.Errorf("clientapi: BindTimeout (%s) and CallTimeout (%s) must be positive", c.BindTimeout, c.CallTimeout)
	case c.Logger == nil:
		return fmt.Errorf("clientapi: Logger is nil")
	}
	return nil
}
