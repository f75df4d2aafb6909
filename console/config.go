package console

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/client"
)

// Config configures a Console.
type Config struct {
	// Node is the node's view of its channels and members (required).
	Node Node
	// Dial connects the SDK client the console reads channel state with:
	// the node's own member key, bound to this node (required). It is
	// called once, when the first channel view is opened.
	Dial func(ctx context.Context) (*client.Client, error)
	// Interval is how often the cluster view is read from Node. Default 1 s.
	Interval time.Duration
	// History is how many cluster messages (states and events) are kept
	// for clients that reconnect. Default 512.
	History int
	// Updates is how many channel view updates (one per batch of heights)
	// are kept per channel for clients that reconnect. Default 256.
	Updates int
	// Idle is how long a channel view goes on following its channel
	// with nobody watching; the next request starts it again. Default
	// 1 min.
	Idle time.Duration
	// MaxStreams bounds the event streams open at once, cluster and
	// channel views together; more are answered 503. Default 64.
	MaxStreams int
	// Logger receives the console's logs. Default: none.
	Logger hclog.Logger
}

// DefaultConfig returns the defaults; Node and Dial must still be set.
func DefaultConfig() Config {
	return Config{Interval: time.Second, History: 512, Updates: 256, Idle: time.Minute, MaxStreams: 64}
}

var (
	// ErrNoNode means Config.Node is not set.
	ErrNoNode = errors.New("console: Config.Node is required")
	// ErrNoDial means Config.Dial is not set.
	ErrNoDial = errors.New("console: Config.Dial is required")
)

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Node == nil:
		return ErrNoNode
	case c.Dial == nil:
		return ErrNoDial
	case c.Interval < 10*time.Millisecond:
		return fmt.Errorf("console: Interval (%s) must be at least 10ms", c.Interval)
	case c.History < 1:
		return fmt.Errorf("console: History (%d) must be at least 1", c.History)
	case c.Updates < 1:
		return fmt.Errorf("console: Updates (%d) must be at least 1", c.Updates)
	case c.Idle < publishEvery:
		return fmt.Errorf("console: Idle (%s) must be at least %s", c.Idle, publishEvery)
	case c.MaxStreams < 1:
		return fmt.Errorf("console: MaxStreams (%d) must be at least 1", c.MaxStreams)
	}
	return nil
}
