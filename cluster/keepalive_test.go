package cluster

import (
	"testing"
	"time"
)

// A member beats at least three times within the chain's heartbeat TTL,
// whatever KeepAliveInterval says; a longer TTL keeps the interval.
func TestKeepAliveEveryFollowsTheChainsTTL(t *testing.T) {
	for _, tc := range []struct {
		interval, ttl, want time.Duration
	}{
		{5 * time.Second, 15 * time.Second, 5 * time.Second},
		{5 * time.Second, time.Minute, 5 * time.Second},
		{5 * time.Second, 3 * time.Second, time.Second},
		{time.Second, 1500 * time.Millisecond, 500 * time.Millisecond},
		{5 * time.Second, 0, 5 * time.Second}, // unknown: the interval
	} {
		if got := keepAliveEvery(tc.interval, tc.ttl); got != tc.want {
			t.Errorf("interval %s, ttl %s: every %s, want %s", tc.interval, tc.ttl, got, tc.want)
		}
	}
}
