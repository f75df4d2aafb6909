// Package transport carries every channel's Raft traffic and the peer API
// over one gRPC port per node, multiplexed by channel id.
package transport
