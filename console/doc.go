// Package console is the node's web console: a page served from embedded
// assets on the admin listener, a live cluster view over Server-Sent
// Events, and views of each channel's state by contract (a MoveCraft map,
// a chat room, an editor's documents, resources by account for any other
// contract).
//
// The console reads channel state only through the verified subscription
// the SDK uses (package client, bound to the node with the node's own member
// key): every outcome's digest chains from the one before. What the node
// knows of its members and roles it takes through the Node interface, which
// cmd/scraft adapts from the cluster, so that this package stays free of
// Raft and the stores.
//
// Two streams, each resumable with the SSE Last-Event-ID:
//
//   - /console/events: the cluster view. Each message has an id that grows
//     by one; "cluster" carries every hosted channel's state, "event" one
//     thing that happened (a leader change, a settlement, evidence). A
//     client that reconnects with the last id it saw receives what followed
//     it, or, when that is no longer retained, "reset" and all that is.
//   - /console/channels/{id}/events: one channel's view, ids are heights.
//     "snapshot" carries the whole view, "update" what changed up to its
//     height. A client that reconnects with a height still retained
//     receives the updates after it, otherwise a snapshot.
package console
