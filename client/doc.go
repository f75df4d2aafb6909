// Package client is the Go SDK applications use to reach a channel through
// any of its nodes.
//
// A Client binds one stream to a node with the member's key (Dial), learns
// its nonce in a channel (Join), signs and submits calls and waits for
// their verified outcome (Call), follows a channel's outcomes from a
// snapshot or a height (Subscribe), and asks for its status, to leave or
// to close it. It fails over between the node addresses it was given:
// calls are retried with the same signed tx, which the nodes answer
// idempotently, and subscriptions resume after the last height they hold.
// Errors from the node are *protocol.Error values with the stable codes of
// clientapi/CLIENT_API.md; errors.Is matches them against the sentinels of
// package protocol (protocol.ErrNoChannel, protocol.ErrBusy, ...). A node
// that answers not_ready, unavailable, closed or timeout is left for the
// next one.
//
// The SDK imports only protocol and clientapi: an application that uses it
// links no Raft, bbolt or wazero.
//
// Each Client has connections of its own; a process with many Clients (a
// game server with one per player) should give them one Pool in their
// Config, so that their streams share one connection per node.
package client
