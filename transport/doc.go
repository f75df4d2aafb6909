// Package transport carries every channel's Raft traffic and the peer API
// over one gRPC port per node, multiplexed by channel id.
//
// A node creates one Server on its listener. Other packages register their
// gRPC services (peer API, client API) on Server.GRPC() before Serve, and
// reach peers through the shared connections of Server.Conn. Each channel
// the node hosts gets its own raft.Transport from Server.Transport(id); the
// Server routes each incoming Raft RPC to the transport of the channel the
// RPC names and answers NOT_FOUND for a channel it does not host.
//
// Faults lets tests cut, drop or delay traffic between in-process nodes.
//
// The wire format is transport/proto/raft.proto (generated code in
// transport/raftpb); DESIGN.md explains framing, ordering, the missing
// heartbeat fast path and failure behaviour.
package transport
