// Package cluster runs the channels a node takes part in: one hashicorp/raft
// group per channel, whose log carries leader-signed batches that every
// member applies through its own fsm.Machine (re-executing and checking
// every tx). The settlement chain decides who leads: a node signs batches
// only while it is both the Raft leader and the chain's leader of the
// current epoch (fencing); a Raft leader that is not the chain's hands over
// to it or, when it is unreachable, claims the leadership on chain with the
// other members' attestations. See DESIGN.md.
//
// A Node hosts channels and serves the peer API (cluster/peerpb) on the
// node's gRPC server, and the client API through ClientAPI (it satisfies
// clientapi.ChannelAPI); a Channel takes signed txs (Submit), reports its
// Status and streams applied outcomes (Subscribe). Errors are sentinels
// that carry protocol's codes (protocol.NewError).
package cluster
